"""The kill switch as a worker sees it: pushed when it can be, otherwise re-read every TTL seconds; failing closed."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from core.db import read_session
from core.queries.settings import ActivationState, Scope, get_activation_state, percent_candidates

log = logging.getLogger(__name__)
UNREADABLE_REMINDER_SECONDS = 60.0


class SettingsCache:
    """Returns the current ActivationState, or None when it cannot be read (then nothing is claimed).

    Beside it, the Scope the state gives, worked out once per read (a percentage needs the list of shops).
    """

    def __init__(self, engine: Engine, *, ttl_seconds: float, recheck_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine, self._ttl, self._clock = engine, ttl_seconds, clock
        self._recheck = ttl_seconds if recheck_seconds is None else recheck_seconds
        self._pushed = False  # True while a listener is connected: every change then arrives as a NOTIFY
        self._state: ActivationState | None = None
        self._read_at = float("-inf")
        self._scope = Scope(shops=frozenset())
        self._lock = threading.Lock()
        self._failing_since: float | None = None  # when the settings became unreadable (None: readable)
        self._warned_at = float("-inf")

    def get(self) -> ActivationState | None:
        """The state as of the last read, read again once it is older than the TTL (RECHECK while pushed)."""
        with self._lock:
            if self._fresh():
                return self._state
            return self._read()

    def cached(self) -> tuple[bool, ActivationState | None]:
        """(fresh, state) without reading: an event loop calls `get` on a thread only when FRESH is False."""
        with self._lock:
            return self._fresh(), self._state

    def _fresh(self) -> bool:
        # Pushed changes need no polling; an unreadable state is polled for anyway, to recover soon.
        ttl = self._recheck if self._pushed and self._state is not None else self._ttl
        return self._clock() - self._read_at < ttl

    def refresh(self, bind: Connection | None = None) -> ActivationState | None:
        """Read the settings now, on BIND if given (a change was announced, or the listener came back)."""
        with self._lock:
            return self._read(bind)

    def set_pushed(self, pushed: bool) -> None:
        """The listener is connected (changes arrive as they commit) or gone (poll every TTL again)."""
        with self._lock:
            self._pushed = pushed

    @property
    def pushed(self) -> bool:
        """True while changes are pushed to this worker."""
        return self._pushed

    def _read(self, bind: Connection | None = None) -> ActivationState | None:
        try:
            with Session(bind=bind) if bind is not None else read_session(self._engine) as s:
                state = get_activation_state(s)
                shop_ids = percent_candidates(s, state)
            self._state, self._scope = state, state.scope(shop_ids=shop_ids)
            if self._failing_since is not None:
                log.warning("the agent settings can be read again after %.0f s; claiming as they say",
                            self._clock() - self._failing_since)
                self._failing_since = None
        except Exception as exc:  # noqa: BLE001 - any failure to read means: claim nothing
            self._state, self._scope = None, Scope(shops=frozenset())
            self._say_unreadable(exc)
        self._read_at = self._clock()
        return self._state

    def _say_unreadable(self, exc: Exception) -> None:
        """Once when the settings become unreadable, then once a minute: polled every TTL, a database outage
        wrote this line 100 times a minute."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since, self._warned_at = now, now
            log.warning("cannot read the agent settings (%s); claiming nothing until they can be read",
                        type(exc).__name__)
        elif now - self._warned_at >= UNREADABLE_REMINDER_SECONDS:
            self._warned_at = now
            log.warning("still cannot read the agent settings after %.0f s (%s); claiming nothing",
                        now - self._failing_since, type(exc).__name__)

    def scope(self) -> Scope:
        """What may start, as of the last read (nothing when the settings could not be read)."""
        with self._lock:
            return self._scope
