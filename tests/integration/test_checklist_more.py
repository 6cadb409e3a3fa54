"""More failing cases: a failure stored without its error, slow queries and replies against the criteria, and the
runner's time limit and its refusal to let an exception out."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from core.checklist import runner
from core.checklist.catalogue import BY_ID
from core.checklist.checks import integration, windows
from core.config import reset_settings
from core.db import write_bind
from core.models import utcnow
from core.queries.settings import Scope
from core.rollups import record_db_time
from core.services import controls
from core.services.conversations import enqueue_conversations
from core.uow import UnitOfWork
from core.worker import store
from tests.support.checklist import ADMIN, context
from tests.support.data import seed_minimal


def test_a_failure_stored_without_its_error_fails_the_try_catch_item(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ADMIN, mode="full", reason="test", uow=UnitOfWork(engine))
    assert integration.check_failures_recorded(context(engine)).status == "warn"  # nothing to inspect yet
    conv = enqueue_conversations(actor=ADMIN, count=1, uow=UnitOfWork(engine))[0]
    assert store.claim(engine, worker_id="w", limit=1, scope=Scope(), lease_seconds=60) == [conv]
    assert store.finish_without_reply(engine, conversation_id=conv, worker_id="w", status="failed", error=None,
                                      provider="test").accepted
    out = integration.check_failures_recorded(context(engine))
    assert out.status == "fail" and str(conv) in out.detail


def test_slow_database_and_slow_replies_fail_the_criteria(engine: Engine, monkeypatch) -> None:
    seed_minimal(engine)
    deployed = utcnow().replace(minute=0, second=0, microsecond=0)
    assert windows.check_sc_db_query(context(engine)).status == "warn"  # no timings yet
    with write_bind(engine).begin() as conn:
        record_db_time(conn, source="worker", samples_ms=[20.0] * 50, at=utcnow())
    assert windows.check_sc_db_query(context(engine)).status == "pass"
    with write_bind(engine).begin() as conn:
        record_db_time(conn, source="worker", samples_ms=[500.0] * 500, at=utcnow())
    assert windows.check_sc_db_query(context(engine)).status == "fail"
    long_ago = deployed.replace(year=deployed.year - 1)
    assert windows.check_extended_db(context(engine, deployed_at=long_ago)).status == "fail"
    assert windows.check_sc_response(context(engine)).status in ("pass", "warn")
    monkeypatch.setenv("SC_RESPONSE_P95_MS", "1")
    reset_settings()
    assert windows.check_sc_response(context(engine)).status == "fail"


def test_a_check_past_its_time_limit_fails_saying_so(engine: Engine, monkeypatch) -> None:
    monkeypatch.setenv("CHECKLIST_ITEM_TIMEOUT_SECONDS", "0.2")
    reset_settings()
    monkeypatch.setitem(runner.REGISTRY, "check_liveness", lambda ctx: time.sleep(2))
    result = runner.run_check(BY_ID["code.status"], context(engine))
    assert result.status == "fail" and result.evidence["detail"] == "did not finish within 0.2 s"


@pytest.mark.parametrize("error", [RuntimeError("boom\nsecond line"), KeyError("x")])
def test_an_exception_in_a_check_becomes_evidence(engine: Engine, monkeypatch, error: Exception) -> None:
    def broken(ctx):
        raise error

    monkeypatch.setitem(runner.REGISTRY, "check_liveness", broken)
    result = runner.run_check(BY_ID["code.status"], context(engine))
    assert result.status == "fail" and result.evidence["detail"].startswith(type(error).__name__)
    assert "second line" not in result.evidence["detail"]


def test_no_secret_a_check_reports_reaches_its_evidence(engine: Engine, monkeypatch) -> None:
    """Whatever a check puts in its evidence (a URL it called, a command's output), the runner masks the secrets
    before the evidence is stored, shown, exported or audited."""
    from core.checklist.outcome import failed

    said = "curl -H 'Authorization: Bearer abc123xyz' http://ops:hunter22@api/x?token=q1w2e3 failed"
    monkeypatch.setitem(runner.REGISTRY, "check_liveness", lambda ctx: failed(
        "GET /health", {"tried": ["http://ops:hunter22@api/health"]}, said, ("OPENAI_API_KEY=sk-live-0123456789",)))
    evidence = str(runner.run_check(BY_ID["code.status"], context(engine)).evidence)
    assert not [s for s in ("abc123xyz", "hunter22", "q1w2e3", "0123456789") if s in evidence], evidence
    assert "ops:***@api/x?token=***" in evidence and "ops:***@api/health" in evidence


def test_the_windows_read_closed_hours_after_the_prober_folds_them(engine: Engine) -> None:
    """The post-deployment windows and success criteria read the compact rows of folded hours too: before, a fold
    left them only the current hour's rows, so "p95" said no data in the first minutes of every hour."""
    from core.rollups_compact import fold_closed_hours

    seed_minimal(engine)
    long_ago = utcnow() - timedelta(days=365)
    before = windows.figures_between(context(engine), long_ago, utcnow())
    with write_bind(engine).begin() as conn:
        fold_closed_hours(conn, before=utcnow() + timedelta(hours=1))  # every hour folded, the current one too
    after = windows.figures_between(context(engine), long_ago, utcnow())
    assert before.p95_ms is not None and after.p95_ms == before.p95_ms


def test_a_fold_during_a_window_read_changes_no_figure(engine: Engine) -> None:
    """The prober folds while a checklist window is read: fine rows read, then moved into the compact rows before
    those were read, were counted twice on PostgreSQL (each statement its own snapshot)."""
    from sqlalchemy import event

    from core.rollups import floor_hour
    from core.rollups_sums import fold_closed_sums
    from tests.support.data import unfold_recent_hours

    seed_minimal(engine, conversations=1500, days=3)
    unfold_recent_hours(engine)
    since, until = utcnow() - timedelta(hours=12), utcnow() + timedelta(hours=1)
    calm = windows.figures_between(context(engine), since, until)
    folded = []

    def fold_midway(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if not folded and "FROM agent_metrics_hourly" in statement:  # the fine sums were read just before
            folded.append(statement)
            with engine.begin() as probe:
                fold_closed_sums(probe, before=floor_hour(utcnow()) + timedelta(hours=1))
    event.listen(engine, "before_cursor_execute", fold_midway)
    try:
        during = windows.figures_between(context(engine), since, until)
    finally:
        event.remove(engine, "before_cursor_execute", fold_midway)
    assert folded and calm.created > 0 and during == calm
