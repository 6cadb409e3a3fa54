"""Read routing on both backends, without a replica and with one that does not answer: reads come from the
primary, the fallback is said once and remembered, so a dead replica costs one connect attempt, not one per read."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, event, func, select

from core.cli import main
from core.config import reset_settings
from core.db import dispose_engines, get_engine
from core.models import Conversation
from core.queries.replica import get_replica_status
from core.read_routing import ON_PRIMARY, ReplicaHealth, forget_replica_state, replica_session, route_of
from tests.support.data import ROLE_ACTORS, seed_minimal
from tests.support.net import free_port

PRODUCT_OWNER = ROLE_ACTORS["product_owner"]


@pytest.fixture
def dead_replica(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """DATABASE_READ_URL names a loopback port nothing listens on."""
    seed_minimal(engine)
    monkeypatch.setenv("DATABASE_READ_URL", f"postgresql://reader:s3cret@127.0.0.1:{free_port()}/agentops")
    reset_settings()
    dispose_engines()
    forget_replica_state()
    yield get_engine()
    forget_replica_state()


def _conversations(session) -> int:
    return session.scalar(select(func.count()).select_from(Conversation))


def test_without_a_replica_every_read_is_the_primarys(engine: Engine) -> None:
    seed_minimal(engine)
    with replica_session() as s:
        assert _conversations(s) > 0
        assert route_of(s).read_from == ON_PRIMARY and not route_of(s).fallback
    status = get_replica_status(actor=PRODUCT_OWNER)
    assert not status.configured and status.reading_from == ON_PRIMARY and status.problem is None


def test_a_dead_replica_is_tried_once_then_skipped(dead_replica: Engine) -> None:
    attempts = []
    event.listen(get_engine(read=True), "do_connect", lambda *a: attempts.append(1))
    for _ in range(3):
        with replica_session() as s:
            assert _conversations(s) > 0  # the primary answers
            assert route_of(s).fallback and "Connection refused" in route_of(s).problem
    assert len(attempts) == 1  # the down state is remembered for DATABASE_READ_RETRY_SECONDS
    status = get_replica_status(actor=PRODUCT_OWNER)
    assert status.configured and not status.reachable and len(attempts) == 1
    assert "s3cret" not in status.url and "s3cret" not in status.problem


def test_the_cli_says_the_replica_is_down_without_its_password(dead_replica: Engine, capsys) -> None:
    assert main(["replica", "--json"]) == 1
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["configured"] and not shown["reachable"] and "s3cret" not in out
    assert shown["problem"].startswith("The read replica is unreachable (")


def test_the_api_answers_from_the_primary_when_the_replica_is_dead(dead_replica: Engine) -> None:
    from fastapi.testclient import TestClient

    from core.api import create_app
    from core.services import tokens, users
    from core.uow import UnitOfWork
    from tests.support.data import system_actor

    admin = system_actor("test")
    users.add_user(actor=admin, username="u-po", password="long enough pw", role="product_owner",
                   uow=UnitOfWork(dead_replica))
    token = tokens.create_token(actor=admin, username="u-po", uow=UnitOfWork(dead_replica)).token
    client = TestClient(create_app(engine=dead_replica))
    answer = client.get("/api/v2/agents/status", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json()["last_hour"]["read_from"] == ON_PRIMARY
    assert client.get("/api/v2/agents/health").json()["info"]["read_replica"]["reachable"] is False


def test_the_down_state_lasts_the_retry_window_and_no_longer() -> None:
    now = [100.0]
    health = ReplicaHealth(retry_seconds=5.0, clock=lambda: now[0])
    assert not health.skipped()
    health.mark_down(ConnectionRefusedError("connection to postgresql://u:pw@10.0.0.9:5433/db refused"))
    assert health.skipped() and "pw" not in health.problem
    now[0] += 4.9
    assert health.skipped()
    now[0] += 0.2
    assert not health.skipped()
    health.mark_down(ConnectionRefusedError("again"))
    health.mark_up()
    assert not health.skipped() and health.problem is None


def test_a_pages_reads_see_one_snapshot_on_one_connection(engine: Engine) -> None:
    """run_read (the health page, the API's status, `metrics`): a shop committed between two figures is in neither,
    and the figures' own snapshot_session() reads on the page's connection instead of checking out more."""
    from sqlalchemy import insert

    from core.db import make_engine, snapshot_session
    from core.models import Shop
    from core.read_routing import run_read

    other = make_engine(engine.url.render_as_string(hide_password=False))  # another client, another pool
    checkouts: list[object] = []

    def count(*_args: object) -> None:
        checkouts.append(1)

    def shops(s) -> int:  # noqa: ANN001
        return s.scalar(select(func.count()).select_from(Shop))

    def page(s) -> tuple[int, int]:  # noqa: ANN001
        first = shops(s)
        with other.begin() as conn:  # commits between the page's two figures
            conn.execute(insert(Shop).values(name="opened meanwhile"))
        with snapshot_session(s) as figure:
            return first, shops(figure)

    event.listen(engine.pool, "checkout", count)
    try:
        assert run_read(page) == (0, 0)
    finally:
        event.remove(engine.pool, "checkout", count)
        other.dispose()
    assert len(checkouts) == 1
    with replica_session() as s:
        assert shops(s) == 1
