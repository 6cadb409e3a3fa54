"""Model-call retries: retryable errors only, Retry-After honoured, one layer (the client's is off)."""
from __future__ import annotations

import httpx2
import openai
import pytest

from core.config import get_settings
from core.llm import OpenAIProvider
from core.retry import backoff_seconds, call_model_with_retries, is_retryable_model_error, retry_after_seconds


def status_error(code: int, headers: dict | None = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(code, headers=headers or {}, request=request)
    cls = {400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
           429: openai.RateLimitError}.get(code, openai.InternalServerError)
    return cls(f"error {code}", response=response, body=None)


@pytest.mark.parametrize("code, retryable", [(400, False), (401, False), (403, False), (429, True), (500, True),
                                             (502, True), (503, True)])
def test_which_status_codes_are_retried(code: int, retryable: bool) -> None:
    assert is_retryable_model_error(status_error(code)) is retryable


def test_timeouts_and_connection_errors_are_retried() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/")
    assert is_retryable_model_error(openai.APITimeoutError(request=request))
    assert is_retryable_model_error(openai.APIConnectionError(request=request))
    assert not is_retryable_model_error(ValueError("bug"))


def test_retry_after_header_sets_the_wait() -> None:
    sleeps: list[float] = []
    errors = iter([status_error(429, {"retry-after": "2.5"}), status_error(429, {"retry-after": "1"})])

    def call() -> str:
        err = next(errors, None)
        if err:
            raise err
        return "ok"

    assert call_model_with_retries(call, attempts=3, base_seconds=0.1, max_seconds=1, sleep=sleeps.append) == "ok"
    assert sleeps == [2.5, 1.0]
    assert retry_after_seconds(status_error(429, {"retry-after": "soon"})) is None


def test_non_retryable_error_is_raised_at_once() -> None:
    calls = []

    def call() -> str:
        calls.append(1)
        raise status_error(401)

    with pytest.raises(openai.AuthenticationError):
        call_model_with_retries(call, attempts=3, base_seconds=0.01, max_seconds=0.1, sleep=lambda _s: None)
    assert len(calls) == 1


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    import random

    rng = random.Random(1)
    waits = [backoff_seconds(a, base_seconds=1, max_seconds=8, rng=rng) for a in range(1, 8)]
    assert all(0 <= w <= min(8, 2 ** (a - 1)) for a, w in zip(range(1, 8), waits))
    assert len(set(waits)) == len(waits)


def test_openai_client_retries_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-xyz-1234")
    monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", "7")
    provider = OpenAIProvider(get_settings())
    assert provider._client.max_retries == 0
    assert provider._client.timeout.read == 7


class _Orig(Exception):
    """A driver error as psycopg2 raises it: a message, and a SQLSTATE only once a session exists."""

    def __init__(self, message: str, pgcode: str | None = None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


def _db_error(message: str, *, pgcode: str | None = None, at_connect: bool = True) -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError(None if at_connect else "SELECT 1", None, _Orig(message, pgcode))


AT_CONNECT = 'connection to server at "127.0.0.1", port 5432 failed: '


@pytest.mark.parametrize("message", [
    AT_CONNECT + "FATAL:  the database system is shutting down",
    AT_CONNECT + "FATAL:  the database system is starting up",
    AT_CONNECT + "FATAL:  the database system is in recovery mode",
    AT_CONNECT + "FATAL:  the database system is not yet accepting connections",
    AT_CONNECT + "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
    AT_CONNECT + "server closed the connection unexpectedly",
    AT_CONNECT + "timeout expired",
])
def test_a_database_restarting_is_transient(message: str) -> None:
    from core.retry import is_transient_db_error

    assert is_transient_db_error(_db_error(message))


def test_cannot_connect_now_sqlstate_is_transient_mid_session() -> None:
    from core.retry import is_transient_db_error

    assert is_transient_db_error(_db_error("FATAL: cannot connect now", pgcode="57P03", at_connect=False))


@pytest.mark.parametrize("message", [
    AT_CONNECT + 'FATAL:  password authentication failed for user "agentops"',
    AT_CONNECT + 'FATAL:  database "agentops" does not exist',
    AT_CONNECT + 'FATAL:  role "nouser" does not exist',
])
def test_a_wrong_setting_is_not_transient(message: str) -> None:
    from core.retry import is_transient_db_error

    assert not is_transient_db_error(_db_error(message))


def test_a_query_error_is_not_transient() -> None:
    from sqlalchemy.exc import ProgrammingError

    from core.retry import is_transient_db_error

    assert not is_transient_db_error(ProgrammingError("SELECT x", None, _Orig('column "x" does not exist', "42703")))


def test_db_retry_with_a_deadline_outlasts_the_checklist_attempts_then_gives_up(monkeypatch) -> None:
    import functools
    import types

    from sqlalchemy.exc import OperationalError

    import core.retry
    from core.config import reset_settings
    from core.retry import db_retry

    # A clock of the test's own: the waits pass instantly and exactly, so the deadline is tested, not the machine's load.
    now = [1000.0]
    monkeypatch.setattr(core.retry, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(core.retry, "Retrying", functools.partial(core.retry.Retrying,
                                                                 sleep=lambda s: now.__setitem__(0, now[0] + s)))
    monkeypatch.setenv("DB_RETRY_DELAY_SECONDS", "0.01")
    reset_settings()
    calls: list[float] = []

    def down_for(attempts: int) -> str:
        calls.append(now[0])
        if len(calls) <= attempts:
            raise _db_error(AT_CONNECT + "Connection refused")
        return "ok"

    assert db_retry(lambda: down_for(5), until=now[0] + 10) == "ok" and len(calls) == 6
    calls.clear()
    with pytest.raises(OperationalError):
        db_retry(lambda: down_for(5))  # without a deadline: the checklist's 3 attempts
    assert len(calls) == 3
    calls.clear()
    started = now[0]
    with pytest.raises(OperationalError):
        db_retry(lambda: down_for(1000), until=started + 0.1)
    # Waits of 0.01, 0.02, then 0.02 each (the checklist's longest): attempts at +0, .01, .03, .05, .07, .09.
    assert [round(t - started, 2) for t in calls] == [0.0, 0.01, 0.03, 0.05, 0.07, 0.09]
    assert now[0] < started + 0.1  # gave up rather than sleep past the deadline


def test_a_drivers_own_connection_error_is_the_databases_trouble() -> None:
    """psycopg2's error from a connection that died outside a statement reaches the worker unwrapped."""
    import psycopg2

    from core.retry import is_database_error, is_transient_db_error

    dropped = psycopg2.OperationalError("server closed the connection unexpectedly")
    assert is_database_error(dropped) and is_transient_db_error(dropped)
    assert not is_transient_db_error(psycopg2.ProgrammingError('relation "x" does not exist'))
    assert not is_database_error(ValueError("a template's own mistake"))
