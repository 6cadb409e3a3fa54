"""The circuit breaker's states with an injected clock: no sleeps."""
from __future__ import annotations

import threading

from core.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_half_opens_after_reset() -> None:
    clock = Clock()
    b = CircuitBreaker(name="openai", failure_threshold=5, reset_seconds=30, clock=clock)
    for _ in range(4):
        assert b.allow()
        b.record_failure()
    assert b.snapshot().state == "closed"
    b.record_failure()
    assert b.snapshot().state == "open" and not b.allow()
    assert b.seconds_until_retry() == 30
    clock.now = 29.9
    assert not b.allow()
    clock.now = 30.0
    assert b.snapshot().state == "half_open"
    assert b.allow() and not b.allow()  # exactly one trial call
    b.record_success()
    assert b.snapshot().state == "closed" and b.allow()


def test_failed_trial_reopens_for_another_pause() -> None:
    clock = Clock()
    b = CircuitBreaker(name="x", failure_threshold=1, reset_seconds=10, clock=clock)
    b.record_failure()
    clock.now = 10
    assert b.allow()
    b.record_failure()
    assert b.snapshot().state == "open" and b.seconds_until_retry() == 10


def test_success_resets_consecutive_count() -> None:
    b = CircuitBreaker(name="x", failure_threshold=3, reset_seconds=1, clock=Clock())
    b.record_failure(), b.record_failure(), b.record_success(), b.record_failure(), b.record_failure()
    assert b.snapshot().state == "closed"


def test_calls_are_not_serialised_by_the_breaker() -> None:
    b = CircuitBreaker(name="x", failure_threshold=5, reset_seconds=1)
    inside, peak, lock, gate = [0], [0], threading.Lock(), threading.Barrier(10, timeout=5)

    def call() -> None:
        assert b.allow()
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        gate.wait()  # all ten are inside the "call" at once, or this times out
        with lock:
            inside[0] -= 1
        b.record_success()

    threads = [threading.Thread(target=call) for _ in range(10)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert peak[0] == 10
