"""Who is signed in, checked against the server-side session on every rerun."""
from __future__ import annotations

import streamlit as st

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


def session_still_open() -> bool:
    """Re-check this tab's session (fragment runs skip the app script); forget it when it has ended."""
    token = st.session_state.get(SESSION_KEY)
    signed = resume_session(token=token, uow=UnitOfWork()) if token else None
    if signed is None:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state.pop("agentops_signed_in", None)
        return False
    st.session_state["agentops_signed_in"] = signed
    return True


def remember(signed: SignedIn) -> None:
    """Keep the session for this tab now, and for reloads once the page has rendered (see persist())."""
    st.session_state[SESSION_KEY] = signed.token


def persist(signed: SignedIn) -> None:
    """Make sure the browser holds the session cookie. Called on every signed-in run: the component that
    writes it is lost when a run is cut short, so one attempt right after sign-in is not enough."""
    if cookies.read_token() != signed.token:
        cookies.store_token(signed.token, expires_at=signed.expires_at)

