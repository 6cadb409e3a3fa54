"""The sign-in form and the sign-out button."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.config import get_settings
from core.errors import PermissionDenied
from core.services.sessions import sign_in, sign_out
from core.uow import UnitOfWork
from dashboard import context


def render_sign_in() -> None:
    """The form; on success the page reruns signed in."""
    st.title("BookedBarber agent operations")
    st.caption(f"Environment: {get_settings().environment}")
    if st.session_state.get(context.ENDED_KEY):  # a click after a demotion only showed this form, without a word
        st.info("Your session has ended: you signed out elsewhere, it expired, or an admin changed your role, "
                "password or access. Sign in again to go on.")
    with st.form("sign_in", clear_on_submit=False):
        username = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        if get_settings().environment == "development":
            st.info("Demo sign-ins: po, support, engineer, admin, each with the password NAME-demo-pass.")
        _preload_chart_code()
        return
    if not username.strip() or not password:  # not a failed attempt: nothing was tried (and none is counted)
        st.error("Enter your user name and password.")
        return
    try:
        signed = sign_in(username=username, password=password, uow=UnitOfWork())
    except PermissionDenied as exc:
        st.error(str(exc))
        return
    context.remember(signed)
    st.session_state.pop(context.ENDED_KEY, None)
    st.rerun()


def render_sign_out(token: str) -> None:
    """The sidebar's sign-out button."""
    if st.sidebar.button("Sign out", key="sign_out"):
        sign_out(token=token, uow=UnitOfWork())
        context.signed_out(token)
        st.rerun()


# Off screen and invisible, but not display:none: the browser must mount the elements for it to load their code.
# visibility:hidden also keeps them out of the tab order and away from screen readers.
_OFF_SCREEN = ("<style>.st-key-preload{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden;"
               "visibility:hidden}</style>")


def _preload_chart_code() -> None:
    """An empty chart and table off screen, so the browser loads and compiles the chart and table code (4.7 MB of
    plotly alone) while the user types: the first page after sign-in no longer waits for it."""
    st.html(_OFF_SCREEN)
    with st.container(key="preload"):
        st.plotly_chart(go.Figure(layout={"height": 10, "width": 10}), key="preload_chart",
                        config={"staticPlot": True})
        st.dataframe(pd.DataFrame({"": []}), key="preload_table")
