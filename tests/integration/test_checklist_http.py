"""The checklist's HTTP checks against the real API served on loopback (and against nothing, and the wrong thing)."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from core.checklist.catalogue import BY_ID
from core.checklist.checks import http, monitoring
from core.checklist.runner import run_check
from core.config import get_settings, reset_settings
from core.db import read_session
from core.models import AuditRecord, ChecklistResult
from core.services import checklist, tokens
from core.uow import UnitOfWork
from tests.support.api_server import LoopbackApi
from tests.support.checklist import ADMIN, beat, context, token_for
from tests.support.data import seed_minimal
from tests.support.fake_sentry import FakeSentry
from tests.support.net import free_port


def use(monkeypatch: pytest.MonkeyPatch, **values: object) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, str(value))
    reset_settings()


@pytest.fixture
def served(engine: Engine, monkeypatch: pytest.MonkeyPatch):
    """The seeded database, a read-only user's token as CHECKLIST_API_TOKEN, the API on loopback."""
    seed_minimal(engine, conversations=0)
    token = token_for(engine, "product_owner")
    use(monkeypatch, API_RATE_LIMIT_PER_MINUTE=5, CHECKLIST_API_TOKEN=token)
    with LoopbackApi(engine) as url:
        use(monkeypatch, API_BASE_URL=url)
        yield engine


def test_liveness_and_readiness(served: Engine) -> None:
    assert http.check_liveness(context(served)).status == "pass"
    out = http.check_readiness_endpoint(context(served))
    assert out.status == "fail" and out.value == 503 and "workers" in out.detail  # no worker yet
    beat(served)
    assert http.check_readiness_endpoint(context(served)).status == "pass"


def test_activate_refuses_no_token_and_a_read_only_role(served: Engine) -> None:
    out = http.check_activate_auth(context(served))
    assert out.status == "pass" and out.value == {"no token": 401, "read-only token": 403}


def test_activate_check_fails_when_its_token_may_activate(served: Engine, monkeypatch) -> None:
    use(monkeypatch, CHECKLIST_API_TOKEN=token_for(served, "engineer"))
    out = http.check_activate_auth(context(served))
    assert out.status == "fail" and out.value["read-only token"] == 404 and "read-only" in out.detail


def test_status_refuses_no_token_and_accepts_a_valid_one(served: Engine) -> None:
    out = http.check_status_endpoint(context(served))
    assert out.status == "pass" and out.value == {"no token": 401, "valid token": 200}


def test_status_check_fails_with_a_revoked_token(served: Engine) -> None:
    listed = tokens.list_tokens(actor=ADMIN, uow=UnitOfWork(served))
    tokens.revoke_token(actor=ADMIN, token_id=listed[0]["id"], uow=UnitOfWork(served))
    out = http.check_status_endpoint(context(served))
    assert out.status == "fail" and out.value["valid token"] == 401


def test_rate_limit_answers_429(served: Engine) -> None:
    out = http.check_rate_limit(context(served))
    assert out.status == "pass" and out.value <= 6


def test_rate_limit_check_fails_where_nothing_limits(served: Engine, monkeypatch, fake_openai) -> None:
    use(monkeypatch, API_BASE_URL=fake_openai.base_url.rsplit("/v1", 1)[0])  # a server without the limiter
    out = http.check_rate_limit(context(served))
    assert out.status == "fail" and "no 429" in out.detail


def test_an_api_that_is_not_there_fails_each_http_item_with_the_reason(engine: Engine, monkeypatch) -> None:
    use(monkeypatch, API_BASE_URL=f"http://127.0.0.1:{free_port()}", CHECKLIST_API_TOKEN="t")
    for item_id in ("code.status", "immediate.endpoints", "security.activate_auth", "activation.status",
                    "security.rate_limit"):
        result = run_check(BY_ID[item_id], context(engine))
        assert result.status == "fail" and result.evidence["detail"].startswith("cannot reach the target"), item_id


def test_sentry_accepts_a_test_event(engine: Engine, monkeypatch) -> None:
    assert monitoring.check_sentry(context(engine)).status == "fail"  # no DSN
    sentry = FakeSentry().start()
    try:
        use(monkeypatch, SENTRY_DSN=sentry.dsn)
        out = monitoring.check_sentry(context(engine))
        assert out.status == "pass"
        events = sentry.error_events()
        assert [e["event_id"] for e in events] == [out.value["event_id"]]
        assert events[0]["tags"] == {"component": "checklist"}
    finally:
        sentry.stop()
    out = run_check(BY_ID["monitoring.sentry"], context(engine))  # the ingest has gone
    assert out.status == "fail" and out.evidence["detail"].startswith("cannot reach the target")


def test_a_password_in_the_api_url_is_kept_out_of_the_evidence_and_the_audit(served: Engine, monkeypatch) -> None:
    """The liveness check named the URL it called in its detail, password and all: stored as evidence (shown on the
    Checklist page to every role, in the exports) and copied into the append-only audit trail."""
    url = get_settings().api_base_url
    use(monkeypatch, API_BASE_URL=url.replace("http://", "http://deploy:S3cretPass@"))
    run = checklist.start_run(actor=ADMIN, uow=UnitOfWork(served))
    [result] = checklist.run_checks(actor=ADMIN, run_id=run.id, item_id="code.status", uow=UnitOfWork(served))
    assert result.status == "pass", result.evidence
    assert "deploy:***@127.0.0.1" in result.evidence["detail"], result.evidence
    with read_session(served) as s:
        stored = [str(e) for e in s.scalars(select(ChecklistResult.evidence))]
        audited = [str(a) for a in s.scalars(select(AuditRecord.after).where(AuditRecord.action == "checklist.check"))]
    assert stored and audited
    assert not [t for t in [str(result.evidence), *stored, *audited] if "S3cretPass" in t]
