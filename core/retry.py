"""Retries with units in the names: model calls (jittered backoff, Retry-After) and database writes."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import openai
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt

from core.config import get_settings

T = TypeVar("T")
log = logging.getLogger(__name__)
# Each wait is capped so a hostile Retry-After cannot park a worker slot for minutes.
MAX_WAIT_SECONDS = 30.0


def is_retryable_model_error(exc: BaseException) -> bool:
    """Timeouts, connection errors, 429 and 5xx are worth another try; 400/401/403 never are."""
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's Retry-After (seconds) on a 429 or 503, if it sent one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), MAX_WAIT_SECONDS) if value is not None else None
    except ValueError:
        return None


def backoff_seconds(attempt: int, *, base_seconds: float, max_seconds: float, rng: random.Random = random.Random()) -> float:
    """Exponential backoff with full jitter: uniform(0, min(max, base · 2^(attempt-1)))."""
    return rng.uniform(0, min(max_seconds, base_seconds * 2 ** (attempt - 1)))


def _model_policy(attempts: int, base_seconds: float, max_seconds: float,
                  on_failure: Callable[[BaseException], None]) -> dict[str, Any]:
    """The model-call retry rule as tenacity arguments (the same for the threaded and the asyncio caller)."""

    def wait(state) -> float:  # noqa: ANN001 - tenacity's RetryCallState
        exc = state.outcome.exception()
        return retry_after_seconds(exc) or backoff_seconds(state.attempt_number, base_seconds=base_seconds,
                                                           max_seconds=max_seconds)

    def note(exc: BaseException) -> bool:
        retryable = is_retryable_model_error(exc)
        if retryable:
            on_failure(exc)
        return retryable

    return {"stop": stop_after_attempt(attempts), "wait": wait, "retry": retry_if_exception(note), "reraise": True}


def call_model_with_retries(fn: Callable[[], T], *, attempts: int, base_seconds: float, max_seconds: float,
                            on_failure: Callable[[BaseException], None] = lambda _e: None,
                            sleep: Callable[[float], None] | None = None) -> T:
    """Call FN up to ATTEMPTS times on retryable errors; ON_FAILURE sees each retryable failure."""
    kwargs = {"sleep": sleep} if sleep else {}
    for attempt in Retrying(**_model_policy(attempts, base_seconds, max_seconds, on_failure), **kwargs):
        with attempt:
            return fn()
    raise AssertionError("unreachable")


async def acall_model_with_retries(fn: Callable[[], Awaitable[T]], *, attempts: int, base_seconds: float,
                                   max_seconds: float,
                                   on_failure: Callable[[BaseException], None] = lambda _e: None) -> T:
    """`call_model_with_retries` for a coroutine: the waits are asyncio sleeps, so other calls go on meanwhile."""
    async for attempt in AsyncRetrying(**_model_policy(attempts, base_seconds, max_seconds, on_failure)):
        with attempt:
            return await fn()
    raise AssertionError("unreachable")


TRANSIENT_SQLSTATES = {"40001", "40P01", "08000", "08003", "08006", "57P01", "57P02", "57P03"}
# What a server says while it goes down, comes up or cannot be reached: the next attempt may well succeed.
# ("the database system is" covers shutting down, starting up, in recovery mode, not yet accepting connections.)
TRANSIENT_TEXTS = ("database is locked", "server closed the connection", "connection refused", "could not connect",
                   "terminating connection", "connection already closed", "the database system is",
                   "no connection to the server", "timeout expired")
# What it says at connect when a setting is wrong: no number of attempts helps.
MISCONFIGURED_TEXTS = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
                       "authentication failed", "sslmode")


def is_driver_error(exc: BaseException) -> bool:
    """A driver's own error that SQLAlchemy did not wrap (psycopg2 or sqlite3): a connection that died while
    SQLAlchemy set its isolation level or returned it to the pool raises one of these, not a DBAPIError."""
    import sqlite3

    import psycopg2  # imported here: the CLI's start does not pay for the driver until an error is classified

    return isinstance(exc, (psycopg2.Error, sqlite3.Error))


def is_database_error(exc: BaseException) -> bool:
    """The database's trouble (wrapped by SQLAlchemy or not), never the conversation's."""
    return isinstance(exc, DBAPIError) or is_driver_error(exc)


def is_transient_db_error(exc: BaseException) -> bool:
    """Connection dropped or refused, server restarting, serialization failure, deadlock, SQLite busy."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if is_driver_error(exc):  # unwrapped: transient when its words say the connection went
        return type(exc).__name__ in ("OperationalError", "InterfaceError") and any(
            s in str(exc).lower() for s in TRANSIENT_TEXTS)
    orig = getattr(exc, "orig", None)
    if getattr(orig, "pgcode", None) in TRANSIENT_SQLSTATES:
        return True
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    text = str(orig or exc).lower()
    if any(s in text for s in TRANSIENT_TEXTS):
        return True
    # psycopg2 reports a failed connect with no SQLSTATE; unless a setting is wrong, the server is just not there yet.
    return exc.statement is None and not any(s in text for s in MISCONFIGURED_TEXTS)


def _db_policy(what: str, until: float | None) -> dict[str, Any]:
    """The database retry rule as tenacity arguments (the same for the threaded and the asyncio caller)."""
    s = get_settings()
    longest = s.db_retry_delay_seconds * s.db_retry_backoff ** max(0, s.db_retry_attempts - 2)

    def wait(state) -> float:  # noqa: ANN001
        return min(longest, s.db_retry_delay_seconds * s.db_retry_backoff ** (state.attempt_number - 1))

    def stop(state) -> bool:  # noqa: ANN001
        if until is None:
            return state.attempt_number >= s.db_retry_attempts
        return time.monotonic() + state.upcoming_sleep >= until

    def log_retry(state) -> None:  # noqa: ANN001
        log.warning("%s failed (%s); retrying", what, state.outcome.exception().__class__.__name__)

    return {"stop": stop, "wait": wait, "retry": retry_if_exception(is_transient_db_error),
            "before_sleep": log_retry, "reraise": True}


def db_retry(fn: Callable[[], T], *, what: str = "database write", until: float | None = None) -> T:
    """Run FN (a whole transaction) again on transient errors: 3 attempts, 1 s, ×2 (the checklist's numbers).

    With UNTIL (a `time.monotonic()` deadline, e.g. when a lease runs out) it keeps trying until the deadline,
    repeating the checklist's last wait; the last error is raised when the next attempt would come too late.
    """
    for attempt in Retrying(**_db_policy(what, until)):
        with attempt:
            return fn()
    raise AssertionError("unreachable")


async def adb_retry(fn: Callable[[], Awaitable[T]], *, what: str = "database write", until: float | None = None) -> T:
    """`db_retry` for a coroutine (e.g. waiting on a batch stored by another thread); asyncio sleeps between tries."""
    async for attempt in AsyncRetrying(**_db_policy(what, until)):
        with attempt:
            return await fn()
    raise AssertionError("unreachable")
