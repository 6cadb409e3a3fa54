"""A real streaming replica on loopback (a private primary and its replica, made by scripts/make-replica):
lag-tolerant reads go to it, its lag is measured, a stopped replica means reads from the primary, and writes and
the kill switch never touch it."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text

from core.config import reset_settings
from core.db import dispose_engines, get_engine, read_session
from core.models import Conversation
from core.queries.replica import get_replica_status
from core.read_routing import ON_PRIMARY, ON_REPLICA, forget_replica_state, replica_session, route_of, run_read
from core.services.controls import engage_kill_switch, set_activation
from core.uow import UnitOfWork
from core.worker.settings_cache import SettingsCache
from tests.conftest import _truncate_postgres
from tests.support.data import ROLE_ACTORS, seed_minimal
from tests.support.pg_cluster import PgCluster
from tests.support.pg_replica import PgReplica, primary_with_replica, use_primary_and_replica

ENGINEER = ROLE_ACTORS["engineer"]


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PgCluster, PgReplica]]:
    """A private primary with the agent schema and its streaming replica (shared by this module's tests)."""
    with primary_with_replica() as both:
        yield both


@pytest.fixture
def replicated(pair, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, PgReplica]]:
    """The process's DATABASE_URL is the clean primary, DATABASE_READ_URL its running, caught-up replica."""
    primary, replica = pair
    engine = use_primary_and_replica(primary, replica, monkeypatch)
    _truncate_postgres(engine)
    seed_minimal(engine)
    replica.wait_caught_up()
    yield engine, replica
    if (replica.data_dir / "postmaster.pid").exists():
        replica.resume()
    dispose_engines()
    forget_replica_state()


def _count(session) -> int:
    return session.scalar(select(func.count()).select_from(Conversation))


def test_lag_tolerant_reads_go_to_the_standby(replicated) -> None:
    with replica_session() as s:
        assert s.scalar(text("SELECT pg_is_in_recovery()")) is True
        assert route_of(s).read_from == ON_REPLICA and not route_of(s).fallback
        assert _count(s) > 0  # the seeded data arrived by streaming replication
    with read_session() as s:  # the ordinary session is the primary's
        assert s.scalar(text("SELECT pg_is_in_recovery()")) is False


def test_with_replay_paused_the_read_sees_the_old_value_and_the_primary_the_new(replicated) -> None:
    engine, replica = replicated
    with read_session(engine) as s:
        before = _count(s)
    replica.pause()
    seed_minimal(engine, conversations=5)
    with read_session(engine) as s:
        after = _count(s)
    with replica_session() as s:
        assert _count(s) == before < after
    status = get_replica_status(actor=ENGINEER)
    assert status.reachable and status.replay_paused and status.lag_bytes > 0 and status.lag_seconds >= 0
    replica.resume()
    replica.wait_caught_up()
    with replica_session() as s:
        assert _count(s) == after
    caught_up = get_replica_status(actor=ENGINEER)
    assert not caught_up.replay_paused and caught_up.lag_bytes < status.lag_bytes


def test_a_stopped_replica_means_reads_from_the_primary_and_says_so(replicated) -> None:
    _engine, replica = replicated
    replica.stop()
    with replica_session() as s:
        assert s.scalar(text("SELECT pg_is_in_recovery()")) is False
        route = route_of(s)
    assert route.read_from == ON_PRIMARY and route.fallback and "127.0.0.1" in (route.problem or "")
    status = get_replica_status(actor=ENGINEER)
    assert status.configured and not status.reachable and status.reading_from == ON_PRIMARY
    assert status.problem.startswith("The read replica is unreachable")
    replica.start()
    forget_replica_state()  # instead of waiting DATABASE_READ_RETRY_SECONDS
    with replica_session() as s:
        assert route_of(s).read_from == ON_REPLICA
    assert get_replica_status(actor=ENGINEER).reachable


def test_a_replica_stopped_in_the_middle_of_a_read_costs_a_repeat_on_the_primary(replicated) -> None:
    _engine, replica = replicated
    servers = []

    def read(session) -> int:
        servers.append("standby" if session.scalar(text("SELECT pg_is_in_recovery()")) else "primary")
        if len(servers) == 1:
            replica.stop()  # ends this session's connection: the next statement on it fails
        return _count(session)

    assert run_read(read) > 0
    assert servers == ["standby", "primary"]
    with replica_session() as s:  # and later reads go straight to the primary, under the banner's flag
        assert route_of(s).read_from == ON_PRIMARY and route_of(s).fallback


def test_writes_and_the_kill_switch_never_read_the_replica(replicated) -> None:
    _engine, replica = replicated
    set_activation(actor=ENGINEER, mode="full", reason="agents on", uow=UnitOfWork())
    replica.wait_caught_up()
    replica.pause()  # the replica now keeps the state from before the switch
    engaged = engage_kill_switch(actor=ENGINEER, reason="replica test", uow=UnitOfWork())
    seen = SettingsCache(get_engine(), ttl_seconds=0).get()  # the worker's view of the switch
    assert seen.running is False and seen.version == engaged.version
    with UnitOfWork() as uow:
        assert uow.session.scalar(text("SELECT pg_is_in_recovery()")) is False
    with replica_session() as s:  # the lagging copy still says full: the switch was not read there
        assert s.scalar(text("SELECT mode FROM agent_settings WHERE id = 1")) == "full"


def _engineer_token(engine: Engine) -> str:
    from core.auth import system_actor
    from core.services import tokens, users

    admin = system_actor("test")
    users.add_user(actor=admin, username="u-eng", password="long enough pw", role="engineer", uow=UnitOfWork(engine))
    return tokens.create_token(actor=admin, username="u-eng", uow=UnitOfWork(engine)).token


def test_the_api_reads_figures_from_the_replica_and_still_answers_without_it(replicated, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from core.api import create_app

    engine, replica = replicated
    monkeypatch.setenv("API_STATUS_CACHE_SECONDS", "0")
    reset_settings()
    headers = {"Authorization": f"Bearer {_engineer_token(engine)}"}
    client = TestClient(create_app(engine=engine))
    status = client.get("/api/v2/agents/status", headers=headers)
    assert status.status_code == 200 and status.json()["last_hour"]["read_from"] == "replica"
    assert client.get("/api/v2/agents/health").json()["info"]["read_replica"]["reachable"] is True
    replica.stop()
    status = client.get("/api/v2/agents/status", headers=headers)
    assert status.status_code == 200 and status.json()["last_hour"]["read_from"] == "primary"
    ready = client.get("/api/v2/agents/health").json()
    assert ready["info"]["read_replica"] == {"reachable": False, "lag_seconds": None, "lag_bytes": None,
                                             "reading_from": "primary"}
    assert "read_replica" not in ready["failing"]


def test_the_cli_reports_the_replica_and_exits_1_when_it_is_down(replicated, capsys) -> None:
    import json

    from core.cli import main

    _engine, replica = replicated
    assert main(["replica", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reachable"] and shown["lag_bytes"] is not None and shown["url"].endswith(f":{replica.port}/agentops")
    assert main(["metrics", "--window", "24h"]) == 0  # the health figures read through the replica
    capsys.readouterr()
    replica.stop()
    assert main(["replica"]) == 1
    assert "UNREACHABLE" in capsys.readouterr().out
    assert main(["metrics", "--window", "24h"]) == 0  # and still come, from the primary


def test_the_health_page_shows_the_lag_and_the_fallback_banner(replicated) -> None:
    from core.auth import system_actor
    from core.seed.runner import seed_demo_users
    from dashboard import data
    from dashboard.replica_widgets import FALLBACK_BANNER
    from tests.dashboard.conftest import body_text, open_app, sign_in

    engine, replica = replicated
    seed_demo_users(actor=system_actor("test"), engine=engine)
    data.health_figures.clear()
    data.replica_status.clear()
    at = sign_in(open_app(), "engineer")
    assert not at.exception
    text = body_text(at)
    assert "Read replica" in text and "Replica lag" in text and FALLBACK_BANNER not in text
    replica.stop()
    data.health_figures.clear()
    data.replica_status.clear()
    at.run()
    assert not at.exception
    text = body_text(at)
    assert FALLBACK_BANNER in text and "The read replica is unreachable" in text
    assert "Conversations" in text  # the figures still come, from the primary
