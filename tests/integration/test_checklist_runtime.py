"""Checks that need the running system: limited activation, templates, the synthetic conversation through a real
worker (then removed), the kill-switch dry run, and the post-deployment windows from the rollups."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.checklist.checks import activation, integration, windows
from core.config import reset_settings
from core.db import read_session
from core.models import AuditRecord, Conversation, utcnow
from core.queries.settings import get_activation_state
from core.services import controls
from core.services.conversations import enqueue_conversations
from core.templates import load_templates
from core.uow import UnitOfWork
from tests.support.checklist import ADMIN, context
from tests.support.data import seed_minimal
from tests.support.workers import RunningWorker, configure, status_counts, wait_for


def limited(engine: Engine, shops: list[int]) -> None:
    controls.set_activation(actor=ADMIN, mode="limited", shops=shops, reason="test", uow=UnitOfWork(engine))


def conversations(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(Conversation))


def test_limited_activation_in_force(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    out = activation.check_limited_activation(context(engine))
    assert out.status == "fail" and out.value["mode"] == "off"
    limited(engine, [1])
    out = activation.check_limited_activation(context(engine))
    assert out.status == "pass" and out.value["shops"] == [1]


def test_templates_load_and_a_broken_file_fails(engine: Engine, monkeypatch, tmp_path: Path) -> None:
    empty = activation.check_templates_load(context(engine))  # it passed on a database holding no template
    assert empty.status == "fail" and "stored rebooking: no template in the database" in empty.detail
    seed_minimal(engine, conversations=0)
    assert activation.check_templates_load(context(engine)).status == "pass"
    broken = tmp_path / "templates.toml"
    broken.write_text('[rebooking]\nname = "Rebooking"\ndescription = "x"\nchannel = "sms"\n'
                      'system_prompt = "Hi {nobody}"\ninitial_message = "Hello"\nrequired_variables = []\n')
    monkeypatch.setattr("core.templates.TEMPLATE_FILE", broken)
    load_templates.cache_clear()
    try:
        out = activation.check_templates_load(context(engine))
        assert out.status == "fail" and "no template shipped" in out.detail
    finally:
        load_templates.cache_clear()


def test_synthetic_conversation_goes_through_a_worker_and_is_removed(engine: Engine, monkeypatch, fake_openai) -> None:
    configure(monkeypatch, OPENAI_API_KEY="sk-test-loopback", OPENAI_BASE_URL=fake_openai.base_url)
    seed_minimal(engine, conversations=0)
    limited(engine, [1])
    with RunningWorker(engine):
        out = integration.check_synthetic_conversation(context(engine))
    assert out.status == "pass", out
    assert out.value["shop"] == 1 and out.value["agent_messages"] == 1 and out.value["cleaned_up"]
    assert fake_openai.calls == 1
    assert conversations(engine) == 0
    with read_session(engine) as s:
        actions = list(s.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)))
    assert actions[-2:] == ["checklist.synthetic_conversation", "checklist.synthetic_cleanup"]
    # Gone from the health figures too: the walkthrough found the 30-day tile one above the statuses below it.
    from core.queries import metrics

    with read_session(engine) as s:
        summary = metrics.get_summary(s, actor=ADMIN, window_hours=24)
    assert summary.conversations == 0 and sum(summary.by_status.values()) == 0 and summary.tokens == 0


def test_synthetic_conversation_fails_without_a_worker_and_is_still_removed(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch, CHECKLIST_SYNTHETIC_TIMEOUT_SECONDS=0.5)
    seed_minimal(engine, conversations=0)
    limited(engine, [1])
    out = integration.check_synthetic_conversation(context(engine))
    assert out.status == "fail" and "still pending" in out.detail and out.value["cleaned_up"]
    assert conversations(engine) == 0
    from core.queries import metrics

    with read_session(engine) as s:
        assert metrics.get_summary(s, actor=ADMIN, window_hours=24).conversations == 0


def test_synthetic_conversation_fails_when_the_system_is_off(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    out = integration.check_synthetic_conversation(context(engine))
    assert out.status == "fail" and "off" in out.detail


def test_kill_switch_dry_run_with_a_real_worker(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch)
    seed_minimal(engine, conversations=0)
    limited(engine, [1, 2])
    with RunningWorker(engine):
        wait_for(lambda: _acknowledged(engine), what="the worker's first heartbeat")
        out = activation.check_kill_switch_dry_run(context(engine))
    assert out.status == "pass", out
    assert out.value["acknowledged"] == 1 and out.value["waiting"] == [] and out.value["restored_mode"] == "limited"
    with read_session(engine) as s:
        state = get_activation_state(s)
    assert (state.mode, state.allowed_shops) == ("limited", (1, 2))  # back exactly as it was


def _acknowledged(engine: Engine) -> bool:
    from core.models import WorkerHeartbeat

    with read_session(engine) as s:
        version = get_activation_state(s).version
        return bool(s.scalar(select(func.count()).select_from(WorkerHeartbeat)
                             .where(WorkerHeartbeat.settings_version >= version)))


def test_kill_switch_dry_run_needs_the_typed_confirmation_in_production(engine: Engine, monkeypatch) -> None:
    seed_minimal(engine, conversations=0)  # before production: no test data goes into production
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COOKIE_KEY", "a-long-random-cookie-key-for-production-tests")
    reset_settings()
    limited(engine, [1])
    out = activation.check_kill_switch_dry_run(context(engine))
    assert out.status == "fail" and "typed confirmation" in out.detail
    with read_session(engine) as s:
        assert get_activation_state(s).mode == "limited"  # nothing was switched


def test_post_deployment_windows(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch, CHECKLIST_MIN_VOLUME=5)
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ADMIN, mode="full", reason="test", uow=UnitOfWork(engine))
    assert windows.check_short_term_processing(context(engine)).status == "waiting"  # not marked deployed
    soon = utcnow() - timedelta(minutes=10)
    out = windows.check_short_term_processing(context(engine, deployed_at=soon))
    assert out.status == "waiting" and "opens at" in out.detail
    deployed = utcnow() - timedelta(minutes=90)
    out = windows.check_short_term_processing(context(engine, deployed_at=deployed))
    assert out.status == "fail" and out.value["completed"] == 0  # nothing processed in the window
    enqueue_conversations(actor=ADMIN, count=8, uow=UnitOfWork(engine), agent_type="rebooking")
    with RunningWorker(engine):
        wait_for(lambda: status_counts(engine).get("completed", 0) >= 8, what="8 conversations")
    out = windows.check_short_term_processing(context(engine, deployed_at=deployed))
    assert out.status == "pass" and out.value["completed"] == 8
    assert windows.check_short_term_errors(context(engine, deployed_at=deployed)).status == "pass"
    assert windows.check_short_term_response(context(engine, deployed_at=deployed)).status == "pass"
    monkeypatch.setenv("SC_RESPONSE_P95_MS", "1")
    monkeypatch.setenv("SC_WINDOW_ERROR_RATE", "0")  # nothing is under a zero limit
    reset_settings()
    assert windows.check_short_term_response(context(engine, deployed_at=deployed)).status == "fail"
    assert windows.check_short_term_errors(context(engine, deployed_at=deployed)).status == "fail"
    monkeypatch.delenv("SC_RESPONSE_P95_MS")
    monkeypatch.delenv("SC_WINDOW_ERROR_RATE")
    reset_settings()
    long_ago = utcnow() - timedelta(hours=25)
    assert windows.check_extended_volume(context(engine, deployed_at=long_ago)).status == "pass"
    monkeypatch.setenv("CHECKLIST_MIN_VOLUME", "1000")
    reset_settings()
    out = windows.check_extended_volume(context(engine, deployed_at=long_ago))
    assert out.status == "fail" and "fewer than 1000" in out.detail


@pytest.mark.parametrize("unused", [None])
def test_window_evidence_names_its_hours(engine: Engine, unused: None) -> None:
    deployed = utcnow() - timedelta(hours=2)
    fig = windows.window(context(engine, deployed_at=deployed), "short_term")
    assert not isinstance(fig, windows.Outcome)
    assert fig.evidence()["hours"].endswith("UTC") and fig.created == 0
