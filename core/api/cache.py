"""Small in-process caches with a lifetime and a size bound: status per scope, token lookups, proven tokens."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

LOCK_STRIPES = 64


class TTLCache:
    """Values per key for TTL seconds, at most MAX_ENTRIES of them (oldest dropped first).

    One computation per key at a time (no stampede), through a fixed set of striped locks, so neither the
    values nor the locks grow with the number of distinct keys an outsider sends."""

    def __init__(self, ttl_seconds: float, *, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self._clock = ttl_seconds, max_entries, clock
        self._values: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._guard = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def __len__(self) -> int:
        return len(self._values)

    def _fresh(self, key: str) -> tuple[bool, Any]:
        hit = self._values.get(key)
        if hit and self._clock() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The cached value of KEY, computing (and storing) it when absent or expired."""
        found, value = self._fresh(key)
        if found:
            return value
        with self._stripes[hash(key) % LOCK_STRIPES]:
            found, value = self._fresh(key)
            if found:
                return value
            value = compute()
            self.put(key, value)
            return value

    def put(self, key: str, value: Any) -> None:
        """Store VALUE for KEY now, dropping the oldest entries beyond the bound."""
        with self._guard:
            self._values[key] = (self._clock(), value)
            self._values.move_to_end(key)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)

    def contains(self, key: str) -> bool:
        """True when KEY holds a value that has not expired."""
        return self._fresh(key)[0]
