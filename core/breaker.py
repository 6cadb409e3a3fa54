"""A circuit breaker per provider: closed → open after N consecutive failures → half-open after a pause.

Unlike pybreaker, the lock is held only while the state changes, never around the call itself,
so ten calls in flight through one breaker stay ten calls in flight.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerSnapshot:
    state: str
    failures: int
    retry_at: float | None  # clock time when an open breaker lets a trial call through


class CircuitBreaker:
    """Counts consecutive failures; while open, `allow()` says no until the reset pause has passed."""

    def __init__(self, *, name: str, failure_threshold: int = 5, reset_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.failure_threshold, self.reset_seconds = name, failure_threshold, reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state, self._failures, self._opened_at = CLOSED, 0, 0.0
        self._trial_in_flight = False

    def allow(self) -> bool:
        """True when a call may go ahead now (in half-open, only one trial call at a time)."""
        with self._lock:
            if self._state == OPEN and self._clock() - self._opened_at >= self.reset_seconds:
                self._state = HALF_OPEN
            if self._state == CLOSED:
                return True
            if self._state == HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker and forget past failures."""
        with self._lock:
            self._state, self._failures, self._trial_in_flight = CLOSED, 0, False

    def record_failure(self) -> None:
        """A call failed on the provider's side; open after the threshold (or at once from half-open)."""
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state, self._opened_at = OPEN, self._clock()

    def release_trial(self) -> None:
        """A half-open trial ended without telling us anything (e.g. a client-side error)."""
        with self._lock:
            self._trial_in_flight = False

    def snapshot(self) -> BreakerSnapshot:
        """The current state, for heartbeats, health and metrics."""
        with self._lock:
            state = self._state
            if state == OPEN and self._clock() - self._opened_at >= self.reset_seconds:
                state = HALF_OPEN
            retry_at = self._opened_at + self.reset_seconds if state == OPEN else None
            return BreakerSnapshot(state, self._failures, retry_at)

    def seconds_until_retry(self) -> float:
        """How long an open breaker stays open (0 when it is not open)."""
        snap = self.snapshot()
        return max(0.0, snap.retry_at - self._clock()) if snap.retry_at is not None else 0.0
