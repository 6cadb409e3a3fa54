"""9.3: the sign-in budget (5 failures per 15 minutes per name) holds under parallel attempts; long names are
ordinary failures."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import Engine, func, select

from core.auth import system_actor
from core.config import reset_settings
from core.db import read_session
from core.errors import PermissionDenied
from core.models import AuditRecord, LoginAttempt
from core.services import sessions, users
from core.uow import UnitOfWork


def burst(engine: Engine, attempts: list[tuple[str, str]]) -> list[str]:
    """Start every attempt at the same instant; returns 'ok' or the refusal sentence for each."""
    gate, results = threading.Barrier(len(attempts)), [""] * len(attempts)

    def attempt(i: int, username: str, password: str) -> None:
        gate.wait()
        try:
            sessions.sign_in(username=username, password=password, uow=UnitOfWork(engine))
            results[i] = "ok"
        except PermissionDenied as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=attempt, args=(i, *a)) for i, a in enumerate(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def sign_in_reasons(engine: Engine) -> Counter:
    with read_session(engine) as s:
        return Counter(s.scalars(select(AuditRecord.reason).where(AuditRecord.action == "sign_in")))


@pytest.fixture
def victim(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> str:
    # A real cost factor widens the window between reading the count and recording the failure, as in production.
    users.add_user(actor=system_actor("test"), username="victim", password="the right password", role="engineer",
                   uow=UnitOfWork(engine))
    monkeypatch.setenv("BCRYPT_ROUNDS", "8")
    reset_settings()
    return "victim"


def test_thirty_parallel_wrong_passwords_check_only_five(engine: Engine, victim: str) -> None:
    results = burst(engine, [(victim, f"wrong {i}") for i in range(30)])
    reasons = sign_in_reasons(engine)
    assert reasons["wrong password"] == 5, reasons
    assert sum(n for r, n in reasons.items() if r.startswith("throttled")) == 25
    assert Counter(results) == {sessions.GENERIC_REFUSAL: 5, "Too many failed sign-ins; try again in 15 minutes.": 25}


def test_right_password_in_a_burst_of_wrong_ones_gets_no_extra_checks(engine: Engine, victim: str) -> None:
    attempts = [(victim, f"wrong {i}") for i in range(15)] + [(victim, "the right password")]
    results = burst(engine, attempts)
    reasons = sign_in_reasons(engine)
    # The budget counts failures. The right password, while it is being checked, holds one of the five places
    # (4 wrong ones checked); once it has succeeded its place is free again (5). Never more.
    assert reasons["wrong password"] <= 5 and reasons["wrong password"] + results.count("ok") >= 5, reasons
    assert results.count("ok") == reasons[""] <= 1  # a successful sign-in is audited without a reason


def test_a_name_longer_than_the_column_is_an_ordinary_failed_attempt(engine: Engine) -> None:
    name = "x" * 300
    with pytest.raises(PermissionDenied, match="Those credentials did not work"):
        sessions.sign_in(username=name, password="whatever", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.succeeded.is_(False))) == 1
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "sign_in")).one()
    assert (rec.outcome, rec.reason) == ("refused", "unknown user name") and rec.target.startswith("x" * 100)
    for _ in range(5):
        with pytest.raises(PermissionDenied):
            sessions.sign_in(username=name, password="whatever", uow=UnitOfWork(engine))
    with pytest.raises(PermissionDenied, match="Too many failed sign-ins"):
        sessions.sign_in(username=name, password="whatever", uow=UnitOfWork(engine))
