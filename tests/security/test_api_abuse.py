"""9.5, 9.6, 9.11 and 10.18: what an outsider can do to the agent API with junk methods, random tokens and ids."""
from __future__ import annotations

import random
import re
import secrets

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from core.api import create_app
from core.api.ratelimit import MemoryLimiter
from core.api.refusals import RefusalCollapser
from core.config import reset_settings
from core.db import make_engine, read_session
from core.models import AuditRecord
from core.services import controls
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS


DOWN = "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_random_methods_and_paths_do_not_grow_the_metrics(api: dict) -> None:
    client, rng = api["client"], random.Random(9)
    for i in range(300):
        method = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(8))
        client.request(method, f"/junk/{secrets.token_hex(8)}" if i % 2 else "/health")
    text = client.get("/metrics").text
    methods = set(re.findall(r'agentops_http_request_duration_seconds_count\{method="([^"]+)"', text))
    routes = set(re.findall(r'route="([^"]+)"', text))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}, methods
    assert routes <= {"/health", "unmatched", "/metrics"}, routes
    assert len(text) < 20_000


def collapsing(client: TestClient, now: list[float]) -> None:
    """Give the app a clock the test moves: the rate limit and the refusal windows both follow it."""
    client.app.state.limiter = MemoryLimiter(60, clock=lambda: now[0])
    client.app.state.refusals = RefusalCollapser(clock=lambda: now[0])


def authenticate_refusals(engine: Engine) -> list[AuditRecord]:
    with read_session(engine) as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action == "api.authenticate")
                              .order_by(AuditRecord.seq)))


def test_a_random_token_per_request_is_limited_by_address(api: dict, engine: Engine) -> None:
    now = [3_000_000.0]
    collapsing(api["client"], now)
    codes = [api["client"].get("/api/v2/agents/status", headers=bearer("bbat_" + secrets.token_urlsafe(32))).status_code
             for _ in range(150)]
    assert codes == [401] * 60 + [429] * 90
    assert api["client"].get("/api/v2/agents/status", headers=bearer(api["tokens"]["engineer"])).status_code == 429


def test_a_valid_token_keeps_its_own_budget_once_proven(api: dict) -> None:
    now = [4_000_000.0]
    collapsing(api["client"], now)
    ok = [api["client"].get("/api/v2/agents/status", headers=bearer(api["tokens"]["admin"])).status_code
          for _ in range(61)]
    assert ok == [200] * 60 + [429]
    other = api["client"].get("/api/v2/agents/status", headers=bearer(api["tokens"]["engineer"]))
    assert other.status_code == 200  # the first request of a token is counted for the address and the token


def test_refusals_from_one_address_become_one_counted_record_per_window(api: dict, engine: Engine) -> None:
    now = [5_000_000.0]
    collapsing(api["client"], now)
    before = len(authenticate_refusals(engine))
    for _ in range(60):
        api["client"].get("/api/v2/agents/status", headers=bearer("bbat_" + secrets.token_urlsafe(32)))
    assert len(authenticate_refusals(engine)) == before + 1
    now[0] += 61  # the window closes; the next request from anyone (but a liveness check) writes its count
    assert api["client"].get("/health").status_code == 200
    assert len(authenticate_refusals(engine)) == before + 1
    assert api["client"].get("/metrics").status_code == 200
    records = authenticate_refusals(engine)[before:]
    assert [r.after["count"] for r in records] == [1, 59]
    assert all(r.outcome == "refused" and r.after["address"] == "testclient" for r in records)
    assert "59 more" in records[1].reason


def test_liveness_answers_and_the_counts_wait_while_the_database_is_away(api: dict, engine: Engine) -> None:
    """The API and CLI attack: with a closed window's count to write and the database gone, /health (liveness)
    answered 500, because every request wrote the counts first; and the count was dropped before it was written."""
    now = [6_000_000.0]
    collapsing(api["client"], now)
    before = len(authenticate_refusals(engine))
    for _ in range(5):
        api["client"].get("/api/v2/agents/status", headers=bearer("bbat_" + secrets.token_urlsafe(32)))
    now[0] += 61
    app = api["client"].app
    app.state.engine, working = make_engine(DOWN), app.state.engine
    try:
        assert api["client"].get("/health").status_code == 200
        assert api["client"].get("/metrics").status_code == 200  # it tried to write, and kept the count
        assert app.state.refusals.due()
    finally:
        app.state.engine.dispose()
        app.state.engine = working
    assert api["client"].get("/metrics").status_code == 200
    records = authenticate_refusals(engine)[before:]
    assert [r.after["count"] for r in records] == [1, 4] and not app.state.refusals.due()


def test_the_token_cache_is_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN_CACHE_SIZE", "50")
    reset_settings()
    client = TestClient(create_app(engine=engine))
    client.app.state.limiter = MemoryLimiter(10**9)
    for _ in range(200):
        assert client.get("/api/v2/agents/status", headers=bearer("bbat_" + secrets.token_urlsafe(32))).status_code == 401
    assert len(client.app.state.token_cache) <= 50


def test_another_shops_conversation_looks_exactly_like_a_missing_one(api: dict, engine: Engine) -> None:
    other, missing = api["conversation"][2], 987_654
    a = api["client"].get(f"/api/v2/agents/conversations/{other}", headers=bearer(api["tokens"]["shop_owner"]))
    b = api["client"].get(f"/api/v2/agents/conversations/{missing}", headers=bearer(api["tokens"]["shop_owner"]))
    assert a.status_code == b.status_code == 404
    assert a.text.replace(str(other), "N") == b.text.replace(str(missing), "N")
    assert "shop" not in a.text
    with read_session(engine) as s:
        refused = s.scalars(select(AuditRecord.target).where(AuditRecord.action == "conversation.read",
                                                             AuditRecord.outcome == "refused")).all()
    assert refused == [f"conversation {other}"]


def test_another_shops_instance_looks_exactly_like_a_missing_one(api: dict, engine: Engine) -> None:
    """The API and CLI attack: an owner's /activate of another shop's instance answered 403 ("…may not instance
    activate for instance 10: that takes the manage instances permission"), a missing one 404: ids could be told
    apart, and the sentence named a permission the owner has."""
    other, missing = api["instance"][2], 987_654
    a = api["client"].post("/api/v2/agents/activate", json={"instance_id": other},
                           headers=bearer(api["tokens"]["shop_owner"]))
    b = api["client"].post("/api/v2/agents/activate", json={"instance_id": missing},
                           headers=bearer(api["tokens"]["shop_owner"]))
    assert a.status_code == b.status_code == 404
    assert a.text.replace(str(other), "N") == b.text.replace(str(missing), "N")
    with read_session(engine) as s:
        refused = s.scalars(select(AuditRecord.target).where(AuditRecord.action == "instance.activate",
                                                             AuditRecord.outcome == "refused")).all()
    assert refused == [f"instance {other}"]  # still recorded as an attempt


def test_status_shows_shop_owners_no_operator_names_or_reasons(api: dict) -> None:
    controls.set_activation(actor=ROLE_ACTORS["engineer"], mode="limited", shops=[1, 2],
                            reason="pilot after incident INC-4411", uow=UnitOfWork(api["client"].app.state.engine))
    for role in ("shop_owner", "enterprise_owner"):
        body = api["client"].get("/api/v2/agents/status", headers=bearer(api["tokens"][role])).text
        assert "erin" not in body and "INC-4411" not in body, role
    owner = api["client"].get("/api/v2/agents/status", headers=bearer(api["tokens"]["shop_owner"])).json()
    assert owner["activation"]["allowed_shops"] == [1] and owner["activation"]["mode"] == "limited"
    engineer = api["client"].get("/api/v2/agents/status", headers=bearer(api["tokens"]["engineer"])).json()
    assert engineer["activation"]["changed_by"] == "erin" and engineer["activation"]["allowed_shops"] == [1, 2]


def test_a_probe_polling_every_two_seconds_is_never_throttled(api: dict) -> None:
    now = [6_000_000.0]
    collapsing(api["client"], now)
    for _ in range(70):  # the same address (a load balancer, a NAT) has spent its API budget
        api["client"].get("/api/v2/agents/status")
    codes = []
    for _ in range(90):  # three minutes of a probe every 2 s
        codes += [api["client"].get("/api/v2/agents/health").status_code, api["client"].get("/health").status_code]
        now[0] += 2
    assert 429 not in codes


@pytest.mark.parametrize("path", ["/metrics", "/docs", "/openapi.json"])
def test_metrics_and_docs_are_private_outside_development(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                         path: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COOKIE_KEY", "prod-cookie-secret-for-tests")
    reset_settings()
    client = TestClient(create_app(engine=engine))
    assert client.get(path).status_code in (401, 404)
    monkeypatch.setenv("METRICS_TOKEN", "scrape-secret-0123456789")
    reset_settings()
    client = TestClient(create_app(engine=engine))
    expected = 200 if path == "/metrics" else 404
    assert client.get(path, headers=bearer("scrape-secret-0123456789")).status_code == expected
    assert client.get(path, headers=bearer("wrong")).status_code in (401, 404)


def test_metrics_and_docs_are_public_in_development(engine: Engine) -> None:
    client = TestClient(create_app(engine=engine))
    assert [client.get(p).status_code for p in ("/metrics", "/docs", "/openapi.json")] == [200, 200, 200]


def test_a_token_in_use_records_when_it_was_last_used(api: dict, engine: Engine) -> None:
    from core.models import ApiToken

    def last_used() -> list:
        with read_session(engine) as s:
            return list(s.scalars(select(ApiToken.last_used_at).where(ApiToken.last_used_at.is_not(None))))

    assert last_used() == []
    for _ in range(3):
        assert api["client"].get("/api/v2/agents/status", headers=bearer(api["tokens"]["admin"])).status_code == 200
    first = last_used()
    assert len(first) == 1
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.last_used_at.is_not(None))) == 1


def test_a_refusal_for_another_shop_names_the_shop_not_a_permission_held(api: dict, engine: Engine) -> None:
    from core.auth import Permission
    from core.errors import PermissionDenied
    from core.services.guard import require

    support = ROLE_ACTORS["support"]  # reviews conversations, of shop 1 only
    with pytest.raises(PermissionDenied) as refused, UnitOfWork(engine) as uow:
        require(uow, support, Permission.REVIEW_CONVERSATIONS, action="review.submit", target="conversation 9",
                shop_id=2)
    assert str(refused.value).endswith(": shop 2 is not one of theirs.") and "permission" not in str(refused.value)


def test_a_refused_tokens_record_holds_no_part_of_it(api: dict, engine: Engine) -> None:
    """The API and CLI attack: the refusal kept the token's first 9 characters (bbat_ and 4 of the secret)."""
    from core.auth import secret_digest

    now = [7_000_000.0]
    collapsing(api["client"], now)
    token = api["tokens"]["revoked"]
    assert api["client"].get("/api/v2/agents/status", headers=bearer(token)).status_code == 401
    reason = authenticate_refusals(engine)[-1].reason
    secret = token.removeprefix("bbat_")
    assert secret[:4] not in reason and f"sha256 {secret_digest(token)[:12]}" in reason
