"""The kill switch as a worker sees it: re-read at most every TTL seconds, failing closed."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, select

from core.db import read_session
from core.models import Shop
from core.queries.settings import ActivationState, Scope, get_activation_state

log = logging.getLogger(__name__)


class SettingsCache:
    """Returns the current ActivationState, or None when it cannot be read (then nothing is claimed).

    Beside it, the Scope the state gives, worked out once per read (a percentage needs the list of shops).
    """

    def __init__(self, engine: Engine, *, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine, self._ttl, self._clock = engine, ttl_seconds, clock
        self._state: ActivationState | None = None
        self._read_at = float("-inf")
        self._scope = Scope(shops=frozenset())
        self._lock = threading.Lock()

    def get(self) -> ActivationState | None:
        with self._lock:
            if self._clock() - self._read_at < self._ttl:
                return self._state
            try:
                with read_session(self._engine) as s:
                    state = get_activation_state(s)
                    shop_ids = s.scalars(select(Shop.id)).all() if state.shop_percent is not None else ()
                self._state, self._scope = state, state.scope(shop_ids=shop_ids)
            except Exception as exc:  # noqa: BLE001 - any failure to read means: claim nothing
                log.warning("cannot read the agent settings (%s); claiming nothing until they can be read",
                            type(exc).__name__)
                self._state, self._scope = None, Scope(shops=frozenset())
            self._read_at = self._clock()
            return self._state

    def scope(self) -> Scope:
        """What may start, as of the last read (nothing when the settings could not be read)."""
        with self._lock:
            return self._scope
