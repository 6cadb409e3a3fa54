"""A one-second cache of status figures per scope: identical for every caller of that scope within it."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class TTLCache:
    """Values per key for TTL seconds; one computation per key at a time (no stampede)."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._clock = ttl_seconds, clock
        self._values: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        hit = self._values.get(key)
        if hit and self._clock() - hit[0] < self.ttl:
            return hit[1]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._values.get(key)
            if hit and self._clock() - hit[0] < self.ttl:
                return hit[1]
            value = compute()
            self._values[key] = (self._clock(), value)
            return value
