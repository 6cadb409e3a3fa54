"""Who is signed in, checked against the server-side session on every rerun."""
from __future__ import annotations

import streamlit as st

from core.auth import Actor
from core.config import get_settings
from core.services.sessions import SignedIn, resume_session
from core.uow import UnitOfWork
from dashboard import cookies

SESSION_KEY = "agentops_session"


def current() -> SignedIn | None:
    """The signed-in user, or None. A token from this tab's state or the cookie counts only while the
    server-side session is open: logout, password change, disabling or a role change end it at once."""
    token = st.session_state.get(SESSION_KEY) or cookies.read_token()
    if not token:
        return None
    signed = resume_session(token=token, uow=UnitOfWork())
    if signed is None:
        st.session_state.pop(SESSION_KEY, None)
        cookies.forget()
        return None
    st.session_state[SESSION_KEY] = token
    return signed


def remember(signed: SignedIn) -> None:
    """Keep the session for this tab now, and for reloads once the page has rendered (see persist())."""
    st.session_state[SESSION_KEY] = signed.token
    st.session_state["agentops_cookie_pending"] = True


def persist(signed: SignedIn) -> None:
    """Write the cookie in a run that renders: the component that sets it is lost if the run is cut short."""
    if st.session_state.pop("agentops_cookie_pending", False):
        cookies.store_token(signed.token, hours=get_settings().session_hours)


def actor() -> Actor:
    """The acting user of the page being rendered (the entrypoint guarantees one is signed in)."""
    signed: SignedIn | None = st.session_state.get("agentops_signed_in")
    if signed is None:
        st.error("You are not signed in.")
        st.stop()
    return signed.actor
