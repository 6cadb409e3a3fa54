"""Who is signed in, checked against the server-side session on every rerun."""
from __future__ import annotations

import streamlit as st

from core.auth import secret_digest
from core.services.sessions import SignedIn, resume_session
from core.uow import UnitOfWork
from dashboard import cookies, issued_tokens

SESSION_KEY = "agentops_session"
ENDED_KEY = "agentops_session_ended"  # a session this tab held has just ended
SIGNED_OUT_KEY = "agentops_session_signed_out"  # the token of the session this tab's own Sign out ended
OWNER_KEY = "_state_owner"  # whose this tab's state is
# What survives a change of user: the session itself, the cookie's bookkeeping, and the markers of the run under way.
# (agentops_session_ended and agentops_session_signed_out are kept too: they start with agentops_session.)
_KEPT = ("agentops_session", "agentops_signed_in", "agentops_cookie_sealed", "_run_", "_banner_")


def current() -> SignedIn | None:
    """The signed-in user, or None. A token from this tab's state or the cookie counts only while the
    server-side session is open: logout, password change, disabling or a role change end it at once."""
    token = st.session_state.get(SESSION_KEY) or cookies.read_token()
    if not token:
        return None
    # Streamlit keeps the cookies the page was loaded with for as long as the tab's session lives: after a reload,
    # the session this tab has just signed out of comes back from them on every run. That is no news to tell.
    signed_out_here = token == st.session_state.get(SIGNED_OUT_KEY)
    signed = None if signed_out_here else resume_session(token=token, uow=UnitOfWork())
    if signed is None:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state[ENDED_KEY] = not signed_out_here  # the sign-in form says why it is back
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
        st.session_state[ENDED_KEY] = token is not None
        return False
    st.session_state["agentops_signed_in"] = signed
    return True


def signed_out(token: str) -> None:
    """This tab has ended the session behind TOKEN itself: forget it, and do not call it ended elsewhere when the
    cookie the page was loaded with names it again."""
    st.session_state.pop(SESSION_KEY, None)
    st.session_state.pop("agentops_signed_in", None)
    st.session_state[SIGNED_OUT_KEY] = token
    issued_tokens.drop(secret_digest(token))  # an API token issued and not yet marked copied goes with it
    forget_state()  # the next user of this tab starts with nothing of this one's
    cookies.forget()


def console_session_id() -> str:
    """The id of the server-side session this tab runs under (the hash of its token, as stored): a reload
    resumes the same one."""
    return secret_digest(st.session_state["agentops_signed_in"].token)


def remember(signed: SignedIn) -> None:
    """Keep the session for this tab now, and for reloads once the page has rendered (see persist())."""
    st.session_state[SESSION_KEY] = signed.token


def persist(signed: SignedIn) -> None:
    """Make sure the browser holds the session cookie. Called on every signed-in run: the component that
    writes it is lost when a run is cut short, so one attempt right after sign-in is not enough."""
    if cookies.read_token() != signed.token:
        cookies.store_token(signed.token, expires_at=signed.expires_at)



def keep_state_for(username: str) -> None:
    """A tab's state (filters typed, the review item held, half-filled forms) belongs to the user who made it:
    when someone else signs in in the same tab it is dropped, so nothing of the last user's shows, or is acted on
    and audited, under the new name (a support user inherited an admin's held item and shop filter, and was
    recorded as reading shops they cannot see)."""
    if st.session_state.get(OWNER_KEY) != username:
        forget_state()
        st.session_state[OWNER_KEY] = username


def forget_state() -> None:
    """Drop everything this tab holds but the session, the cookie's bookkeeping and the run's markers."""
    for key in [k for k in st.session_state if not str(k).startswith(_KEPT)]:
        del st.session_state[key]
