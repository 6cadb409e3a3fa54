"""The API token an admin has just issued, kept in this console process's memory until they mark it copied.

Streamlit's session state lives as long as one page load: a reload (F5, a URL typed, Back) starts a new one, and a
token kept there was gone for good while it stayed active. This store is keyed by the console session the cookie
names (its id, the hash of its token), which a reload resumes, so the token is shown again after one.

Bounded: one token per console session (the last issued), for LIFETIME_SECONDS at most, dropped when its issuer
marks it copied or signs out. Only ever here, in memory: never in the database, a log, the audit trail or a file.
It does not outlive the process, and another console replica does not see it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LIFETIME_SECONDS = 10 * 60


@dataclass(frozen=True)
class _Held:
    issuer: str
    token: str
    until: float  # on the monotonic clock


_lock = threading.Lock()  # scripts of several tabs run at once, in threads of this one process
_held: dict[str, _Held] = {}


def keep(*, session_id: str, issuer: str, token: str, clock: Callable[[], float] = time.monotonic) -> None:
    """Hold TOKEN for the console session SESSION_ID, in place of any token it held before."""
    with _lock:
        _drop_stale(clock())
        _held[session_id] = _Held(issuer, token, clock() + LIFETIME_SECONDS)


def held(*, session_id: str, issuer: str, clock: Callable[[], float] = time.monotonic) -> str | None:
    """The token SESSION_ID holds if ISSUER issued it and its time is not up, else None."""
    with _lock:
        _drop_stale(clock())
        found = _held.get(session_id)
    return found.token if found and found.issuer == issuer else None


def drop(session_id: str) -> None:
    """Forget the token SESSION_ID holds (marked copied, or the session signed out)."""
    with _lock:
        _held.pop(session_id, None)


def _drop_stale(now: float) -> None:
    for key in [k for k, v in _held.items() if v.until <= now]:
        del _held[key]
