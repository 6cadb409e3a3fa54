"""The agent API: refusals audited, rate limits, readiness, errors, metrics (who may call what: the table in
tests/security/test_authorization_table.py)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from core.api import create_app
from core.api.ratelimit import MemoryLimiter, client_address
from core.db import make_engine, read_session
from core.models import AgentInstance, ApiToken, AuditRecord, WorkerHeartbeat, utcnow
from core.services import tokens
from core.uow import UnitOfWork


def call(api: dict, who: str, method: str, path: str, **kw) -> int:
    token = api["tokens"][who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api["client"].request(method, path, headers=headers, **kw).status_code


def test_refusals_are_audited_as_unauthorized_attempts(api: dict, engine: Engine) -> None:
    call(api, "support", "GET", f"/api/v2/agents/conversations/{api['conversation'][2]}")
    call(api, "revoked", "GET", "/api/v2/agents/status")
    call(api, "shop_owner", "POST", "/api/v2/agents/activate", json={"instance_id": api["instance"][2]})
    with read_session(engine) as s:
        refused = s.execute(select(AuditRecord.actor, AuditRecord.action).where(AuditRecord.outcome == "refused")).all()
    assert ("u-support", "conversation.read") in refused
    assert ("u-shop-owner", "instance.activate") in refused
    assert any(a == "api.authenticate" for _, a in refused)


def test_product_owner_sees_client_data_masked(api: dict) -> None:
    client, conv = api["client"], api["conversation"][1]
    po = client.get(f"/api/v2/agents/conversations/{conv}", headers={"Authorization": f"Bearer {api['tokens']['product_owner']}"}).json()
    eng = client.get(f"/api/v2/agents/conversations/{conv}", headers={"Authorization": f"Bearer {api['tokens']['engineer']}"}).json()
    assert po["pii_masked"] and "•" in po["client"]["phone"] and po["client"]["phone"] != eng["client"]["phone"]
    assert eng["client"]["phone"].startswith("+1555")


def test_a_product_owner_reads_no_client_name_through_the_api(api: dict, engine: Engine) -> None:
    """The console masks a client's name for a product owner ('L. L.') and in the messages ('Hi L.,'); the API gave
    the same reader first_name 'Lena' and the message 'Hi Lena, …' (and its own, different phone mask)."""
    from core.models import Client, Conversation, Message

    with read_session(engine) as s:
        conv, first, last, phone = s.execute(
            select(Conversation.id, Client.first_name, Client.last_name, Client.phone)
            .join(Client, Client.id == Conversation.client_id).join(Message, Message.conversation_id == Conversation.id)
            .where(Conversation.shop_id == 1, Message.content.contains(Client.first_name)).limit(1)).one()
    client = api["client"]
    po = client.get(f"/api/v2/agents/conversations/{conv}",
                    headers={"Authorization": f"Bearer {api['tokens']['product_owner']}"}).json()
    assert po["pii_masked"] and first not in str(po) and last not in str(po) and phone[-4:] not in str(po)
    assert (po["client"]["first_name"], po["client"]["last_name"]) == (f"{first[0]}.", f"{last[0]}.")
    assert any(f"{first[0]}." in m["content"] for m in po["messages"])
    eng = client.get(f"/api/v2/agents/conversations/{conv}",
                     headers={"Authorization": f"Bearer {api['tokens']['engineer']}"}).json()
    assert eng["client"]["first_name"] == first and any(first in m["content"] for m in eng["messages"])


def test_activation_changes_the_instance(api: dict, engine: Engine) -> None:
    inst = api["instance"][1]
    assert call(api, "shop_owner", "POST", "/api/v2/agents/deactivate", json={"instance_id": inst}) == 200
    with read_session(engine) as s:
        assert s.get(AgentInstance, inst).status == "paused"


def test_61st_request_in_a_minute_is_limited_and_recovers(api: dict) -> None:
    now = [1_000_000.0]
    api["client"].app.state.limiter = MemoryLimiter(60, clock=lambda: now[0])
    codes = [call(api, "engineer", "GET", "/api/v2/agents/status") for _ in range(61)]
    assert codes[:60] == [200] * 60 and codes[60] == 429
    resp = api["client"].get("/api/v2/agents/status", headers={"Authorization": f"Bearer {api['tokens']['engineer']}"})
    assert resp.status_code == 429 and 1 <= int(resp.headers["Retry-After"]) <= 61
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    assert call(api, "admin", "GET", "/api/v2/agents/status") == 200  # another token has its own budget
    now[0] += 60
    assert call(api, "engineer", "GET", "/api/v2/agents/status") == 200


def test_redis_limit_is_shared_by_replicas(api: dict, engine: Engine) -> None:
    import uuid

    from core.api.ratelimit import RedisLimiter

    now = [2_000_000.0 + uuid.uuid4().int % 10_000 * 60]
    a, b = TestClient(create_app(engine=engine)), TestClient(create_app(engine=engine))
    for client in (a, b):
        client.app.state.limiter = RedisLimiter(5, "redis://127.0.0.1:6379/0", clock=lambda: now[0])
    headers = {"Authorization": f"Bearer {api['tokens']['admin']}"}
    codes = [(a if i % 2 else b).get("/api/v2/agents/status", headers=headers).status_code for i in range(6)]
    assert codes == [200] * 5 + [429]


def test_readiness_names_what_fails(api: dict, engine: Engine) -> None:
    resp = api["client"].get("/api/v2/agents/health")
    assert resp.status_code == 503 and "workers" in resp.json()["failing"]
    with UnitOfWork(engine) as uow:
        uow.session.add(WorkerHeartbeat(id="w1", host="h", pid=1, last_seen_at=utcnow()))
        uow.commit()
    resp = api["client"].get("/api/v2/agents/health")
    assert resp.status_code == 200, resp.json()
    assert set(resp.json()["ok"]) == {"database", "schema", "workers", "breakers"}
    with UnitOfWork(engine) as uow:
        uow.session.add(WorkerHeartbeat(id="host-a-4242", host="host-a", pid=4242, last_seen_at=utcnow(),
                                        breaker_state="open"))
        uow.commit()
    resp = api["client"].get("/api/v2/agents/health")
    assert resp.status_code == 503
    assert resp.json()["failing"] == {"breakers": "open on 1 of 2 live workers: model calls are deferred"}
    assert resp.json()["info"]["breakers"] == {"closed": 1, "open": 1}
    assert "host-a" not in resp.text and "w1" not in resp.text  # it answers anyone: no host names, no pids


def test_missing_agent_tables_are_said_as_such_not_as_an_outage(api: dict, engine: Engine) -> None:
    """After `db cleanup` SQLite's "no such table" answered "The database is unavailable; try again shortly"."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("DROP TABLE agent_settings" + (" CASCADE" if engine.dialect.name == "postgresql" else "")))
    resp = api["client"].get("/api/v2/agents/status", headers={"Authorization": f"Bearer {api['tokens']['engineer']}"})
    assert resp.status_code == 503
    assert resp.json() == {"error": "The agent tables are missing; run `python -m core db setup`."}


def test_readiness_when_the_database_is_down() -> None:
    client = TestClient(create_app(engine=make_engine("postgresql://postgres@127.0.0.1:1/none")))
    resp = client.get("/api/v2/agents/health")
    assert resp.status_code == 503 and "database" in resp.json()["failing"]
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("kwargs, status", [
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422),
    ({"json": {"instance_id": "three"}}, 422),
    ({"json": {"instance_id": 1, "surprise": True}}, 422),
    ({"content": b"x" * (1024 * 1024 + 1), "headers": {"Content-Type": "application/json"}}, 413),
    ({"json": {"instance_id": 999999}}, 404),
    ({"json": {"instance_id": True}}, 422),  # not instance 1
    ({"json": {"instance_id": 1, "reason": "x\u0000y"}}, 422),  # PostgreSQL cannot store it: was a 500
])
def test_bad_bodies_get_4xx_without_a_trace(api: dict, kwargs: dict, status: int) -> None:
    headers = {"Authorization": f"Bearer {api['tokens']['engineer']}", **kwargs.pop("headers", {})}
    resp = api["client"].post("/api/v2/agents/activate", headers=headers, **kwargs)
    assert resp.status_code == status
    assert "Traceback" not in resp.text and resp.json()["error"]


def test_an_unknown_route_or_method_answers_in_the_same_shape(api: dict) -> None:
    headers = {"Authorization": f"Bearer {api['tokens']['engineer']}"}
    assert api["client"].get("/api/v2/nope", headers=headers).json() == {"error": "Not Found"}
    assert api["client"].delete("/health").json() == {"error": "Method Not Allowed"}


def test_metrics_exposition(api: dict) -> None:
    call(api, "engineer", "GET", "/api/v2/agents/status")
    text = api["client"].get("/metrics").text
    assert 'agentops_http_request_duration_seconds_count{method="GET",route="/api/v2/agents/status",status="200"} 1.0' in text
    assert "agentops_kill_switch_engaged 1.0" in text  # minimal seed leaves the switch off
    assert 'agentops_conversations_last_hour{status="completed"}' in text


def test_client_address_trusts_only_configured_proxies() -> None:
    assert client_address("10.0.0.5", "1.2.3.4", "") == "10.0.0.5"
    assert client_address("10.0.0.5", "1.2.3.4", "10.0.0.0/8") == "1.2.3.4"
    assert client_address("10.0.0.5", "9.9.9.9, 1.2.3.4, 10.0.0.7", "10.0.0.0/8") == "1.2.3.4"
    assert client_address("8.8.8.8", "1.2.3.4", "10.0.0.0/8") == "8.8.8.8"


def test_tokens_cli_prints_once_and_stores_a_hash(api: dict, engine: Engine, capsys) -> None:
    from core.cli import main

    assert main(["tokens", "create", "--user", "u-admin", "--expires-days", "5"]) == 0
    token = capsys.readouterr().out.splitlines()[0]
    assert token.startswith("bbat_")
    with read_session(engine) as s:
        hashes = set(s.scalars(select(ApiToken.token_hash)))
    assert token not in hashes and tokens.token_hash(token) in hashes
    assert main(["tokens", "list"]) == 0
    assert token not in capsys.readouterr().out
    assert main(["tokens", "create", "--user", "ghost"]) == 1


def test_revoked_token_stops_working_within_a_second(api: dict, engine: Engine) -> None:
    import time

    from core.models import User

    with read_session(engine) as s:
        uid = s.scalars(select(User.id).where(User.username == "u-admin")).one()
        tid = s.scalars(select(ApiToken.id).where(ApiToken.user_id == uid)).first()
    assert call(api, "admin", "GET", "/api/v2/agents/status") == 200
    tokens.revoke_token(actor=tokens_admin(), token_id=tid, uow=UnitOfWork(engine))
    time.sleep(1.05)
    assert call(api, "admin", "GET", "/api/v2/agents/status") == 401


def tokens_admin():  # noqa: ANN201
    from core.auth import system_actor

    return system_actor("test")


def test_a_slow_token_lookup_does_not_block_other_requests(api: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token check is database work; it must run off the event loop, or one slow lookup stalls every caller.
    Told by order, not by time (a threshold of 0.5 s failed on a loaded machine): the lookup is held until /health
    has answered; had it blocked the loop, /health could only answer after the lookup gave up waiting."""
    import asyncio
    import threading

    import httpx

    from core.services import tokens as token_service

    real, release, looked_up = token_service.use_token, threading.Event(), threading.Event()
    entered = threading.Event()

    def held_lookup(**kwargs):  # noqa: ANN003, ANN202 - the database answering slowly
        entered.set()
        release.wait(timeout=10)
        looked_up.set()
        return real(**kwargs)

    monkeypatch.setattr("core.api.security.use_token", held_lookup)

    async def scenario() -> bool:
        transport = httpx.ASGITransport(app=api["client"].app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            slow = asyncio.create_task(client.get("/api/v2/agents/status",
                                                  headers={"Authorization": f"Bearer {api['tokens']['admin']}"}))
            while not entered.is_set():  # until the slow request is in its token lookup
                await asyncio.sleep(0.01)
            assert (await client.get("/health")).status_code == 200
            answered_while_held = not looked_up.is_set()
            release.set()
            assert (await slow).status_code == 200
            return answered_while_held

    assert asyncio.run(scenario())
