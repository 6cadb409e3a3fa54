"""The browser cookie holds only the session token, encrypted with streamlit-authenticator's Encryptor.

Unlike the library's own re-authentication cookie (a JWT that stays valid after logout, see its
issues #91 and #195), this token is worthless once the server-side session has ended.
"""
from __future__ import annotations

from datetime import datetime

import streamlit as st
from cryptography.fernet import InvalidToken
from streamlit_authenticator.utilities import Encryptor

from core.config import get_settings

COOKIE_NAME = "agentops_session"


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


def _manager():  # noqa: ANN202 - extra_streamlit_components.CookieManager
    import extra_streamlit_components as stx

    return stx.CookieManager(key="agentops_cookies")


def store_token(token: str, *, expires_at: datetime) -> None:
    """Ask the browser to keep the encrypted token until the session expires.

    The ciphertext is kept per token, so repeated calls send the component the same arguments."""
    sealed = st.session_state.get("agentops_cookie_sealed")
    if not sealed or sealed[0] != token:
        sealed = (token, _encryptor().encrypt(token))
        st.session_state["agentops_cookie_sealed"] = sealed
    local_expiry = expires_at.astimezone().replace(tzinfo=None)  # the component expects local, naive time
    # Secure outside development (the console is served over TLS there); plain http only on a developer's machine.
    # Not HttpOnly: the component writes the cookie through document.cookie, which cannot set that flag, and
    # Streamlit has no server-side Set-Cookie. The cookie holds only an encrypted token of a server-side session.
    secure = get_settings().environment != "development"
    _manager().set(COOKIE_NAME, sealed[1], key="agentops_cookie_set", expires_at=local_expiry, same_site="strict",
                   secure=secure)


def forget() -> None:
    """Drop the cookie (after sign-out or an ended session)."""
    if _raw_cookie():
        try:
            _manager().delete(COOKIE_NAME, key="agentops_cookie_delete")
        except KeyError:
            pass
