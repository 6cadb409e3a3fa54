"""The sign-in form and the sign-out button."""
from __future__ import annotations

import streamlit as st

from core.config import get_settings
from core.errors import PermissionDenied
from core.services.sessions import sign_in, sign_out
from core.uow import UnitOfWork
from dashboard import context, cookies


def render_sign_in() -> None:
    """The form; on success the page reruns signed in."""
    st.title("BookedBarber agent operations")
    st.caption(f"Environment: {get_settings().environment}")
    with st.form("sign_in", clear_on_submit=False):
        username = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        if get_settings().environment == "development":
            st.info("Demo sign-ins: po, support, engineer, admin, each with the password NAME-demo-pass.")
        return
    try:
        signed = sign_in(username=username, password=password, uow=UnitOfWork())
    except PermissionDenied as exc:
        st.error(str(exc))
        return
    context.remember(signed)
    st.rerun()


def render_sign_out(token: str) -> None:
    """The sidebar's sign-out button."""
    if st.sidebar.button("Sign out", key="sign_out"):
        sign_out(token=token, uow=UnitOfWork())
        st.session_state.pop(context.SESSION_KEY, None)
        st.session_state.pop("agentops_signed_in", None)
        cookies.forget()
        st.rerun()
