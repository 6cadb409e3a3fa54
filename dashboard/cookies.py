"""The browser cookie holds only the session token, encrypted with streamlit-authenticator's Encryptor.

Unlike the library's own re-authentication cookie (a JWT that stays valid after logout, see its
issues #91 and #195), this token is worthless once the server-side session has ended.

The cookie is written by a one-way script (a static component that reports nothing back). A bidirectional cookie
component posts the browser's cookies back when it mounts and again after each write, and every post-back reran
the whole page: three to four runs of the first page after sign-in. The server reads the cookie from the request
(`st.context.cookies`), so nothing needs to come back.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import format_datetime

import streamlit as st
from cryptography.fernet import InvalidToken
from streamlit_authenticator.utilities import Encryptor

from core.config import get_settings

COOKIE_NAME = "agentops_session"
EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"


def _encryptor() -> Encryptor:
    return Encryptor(get_settings().cookie_key.get_secret_value())


def read_token() -> str | None:
    """The session token from the request's cookie, if it decrypts with our key."""
    raw = _raw_cookie()
    if not raw:
        return None
    try:
        return _encryptor().decrypt(raw)
    except (InvalidToken, ValueError):
        return None


def _raw_cookie() -> str | None:
    try:
        raw = st.context.cookies.get(COOKIE_NAME)
    except (AttributeError, RuntimeError):
        return None
    return raw if isinstance(raw, str) else None


def _write(value: str, *, expires_at: datetime | None) -> None:
    """Set (or, with no EXPIRES_AT, delete) the cookie from the page: SameSite=Strict, Secure outside development.

    Not HttpOnly: only JavaScript can write it (document.cookie cannot set that flag), and Streamlit has no
    server-side Set-Cookie. The cookie holds only an encrypted token of a server-side session."""
    expires = format_datetime(expires_at.astimezone(timezone.utc), usegmt=True) if expires_at else EXPIRED
    flags = ["path=/", f"expires={expires}", "SameSite=Strict"]
    if get_settings().environment != "development":  # plain http only on a developer's machine
        flags.append("Secure")
    cookie = "; ".join([f"{COOKIE_NAME}={value}", *flags])
    # The value is Fernet's URL-safe base64; "<" is escaped all the same so the string can never end the script.
    literal = json.dumps(cookie).replace("<", "\\u003c")
    # st.iframe of a string: our own fixed script in a same-origin frame, never content from a user or the database.
    # One pixel high: an iframe of a bare script is otherwise drawn at the browser default of 150 px, a blank band
    # above every page until the next reload.
    st.iframe(f"<script>window.parent.document.cookie = {literal};</script>", height=1)


def store_token(token: str, *, expires_at: datetime) -> None:
    """Ask the browser to keep the encrypted token until the session expires.

    The ciphertext is kept per token, so every run renders the same script and the browser runs it once."""
    sealed = st.session_state.get("agentops_cookie_sealed")
    if not sealed or sealed[0] != token:
        sealed = (token, _encryptor().encrypt(token))
        st.session_state["agentops_cookie_sealed"] = sealed
    _write(sealed[1], expires_at=expires_at)


def forget() -> None:
    """Drop the cookie (after sign-out or an ended session)."""
    if _raw_cookie() or st.session_state.pop("agentops_cookie_sealed", None):
        _write("", expires_at=None)
