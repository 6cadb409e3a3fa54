"""Crashes and outages: SIGKILL mid-conversation, a lost lease, a dropped connection, SIGTERM."""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text, update

from core.config import get_settings, reset_settings
from core.db import dispose_engines, get_engine, read_session
from core.llm import Reply
from core.migrate import upgrade_to_head
from core.models import Conversation
from core.queries.settings import get_activation_state
from core.worker import store
from core.worker.runner import Worker
from tests.support.pg_cluster import PgCluster
from tests.support.workers import (
    RunningWorker, agent_messages_per_conversation, configure, prepare, spawn_worker, status_counts, wait_for,
)



def test_sigkill_mid_conversation_loses_nothing_and_doubles_nothing(engine: Engine, db_url: str, fake_openai,
                                                                    tmp_path: Path) -> None:
    fake_openai.set("ok", delay_seconds=1.0)
    ids = prepare(engine, 8)
    first = spawn_worker(db_url, fake_openai.base_url, tmp_path, "first", AGENT_LEASE_SECONDS=2, AGENT_MAX_CONCURRENT=4)
    try:
        wait_for(lambda: status_counts(engine).get("in_progress", 0) >= 2, what="the first worker to hold work")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        held = status_counts(engine).get("in_progress", 0)
        assert held >= 1, "the killed worker left conversations in progress"
        fake_openai.set("ok", delay_seconds=0.05)
        second = spawn_worker(db_url, fake_openai.base_url, tmp_path, "second", AGENT_LEASE_SECONDS=2)
        try:
            wait_for(lambda: status_counts(engine).get("pending", 0) + status_counts(engine).get("in_progress", 0) == 0,
                     timeout=30, what="the second worker to take over expired leases")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0
    finally:
        if first.poll() is None:
            first.kill()
    counts = status_counts(engine)
    assert counts.get("completed", 0) + counts.get("opted_out", 0) == len(ids)
    assert set(agent_messages_per_conversation(engine).values()) == {1}


def test_late_completion_from_a_worker_that_lost_its_lease_is_rejected(engine: Engine) -> None:
    [conv_id] = prepare(engine, 1)
    with read_session(engine) as s:
        state = get_activation_state(s)
    assert store.claim(engine, worker_id="A", limit=1, scope=state.scope(), lease_seconds=60) == [conv_id]
    with engine.begin() as conn:  # A stalls past its lease
        conn.execute(update(Conversation).values(lease_expires_at=Conversation.started_at))
    assert store.claim(engine, worker_id="B", limit=1, scope=state.scope(), lease_seconds=60) == [conv_id]
    reply = Reply(text="Hi!", prompt_tokens=1, completion_tokens=1, provider="openai", model="gpt-4o-mini", latency_ms=5)
    assert store.complete(engine, conversation_id=conv_id, worker_id="A", reply=reply, response_ms=10).accepted is False
    assert store.complete(engine, conversation_id=conv_id, worker_id="B", reply=reply, response_ms=10).accepted is True
    assert store.complete(engine, conversation_id=conv_id, worker_id="B", reply=reply, response_ms=10).accepted is False
    assert agent_messages_per_conversation(engine) == {conv_id: 1}
    with read_session(engine) as s:
        assert s.get(Conversation, conv_id).attempts == 2


def test_sigterm_stops_cleanly_and_releases_nothing_half_done(engine: Engine, db_url: str, fake_openai,
                                                              tmp_path: Path) -> None:
    fake_openai.set("ok", delay_seconds=0.3)
    prepare(engine, 30)
    proc = spawn_worker(db_url, fake_openai.base_url, tmp_path, "w", AGENT_MAX_CONCURRENT=3)
    wait_for(lambda: status_counts(engine).get("completed", 0) >= 3, what="work to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert status_counts(engine).get("in_progress", 0) == 0
    assert "stopped" in (tmp_path / "w.log").read_text()


def test_database_connections_dropped_mid_run(pg_engine: Engine, fake_openai, monkeypatch) -> None:
    engine = pg_engine
    configure(monkeypatch, OPENAI_API_KEY="sk-test-loopback", OPENAI_BASE_URL=fake_openai.base_url,
              DB_RETRY_DELAY_SECONDS=0.05)
    fake_openai.set("ok", delay_seconds=0.1)
    ids = prepare(engine, 30)
    with RunningWorker(engine):
        wait_for(lambda: status_counts(engine).get("completed", 0) >= 3, what="work to start")
        with engine.connect() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
        assert killed >= 1
        wait_for(lambda: sum(status_counts(engine).get(s, 0) for s in ("completed", "opted_out")) == len(ids),
                 timeout=30, what="every conversation to finish after the outage")
    assert set(agent_messages_per_conversation(engine).values()) == {1}


def test_a_conversation_whose_workers_keep_dying_is_failed_not_looped(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch)
    [conv_id] = prepare(engine, 1)
    from core.models import Client

    with engine.begin() as conn:  # five earlier claims, each ended by a dead worker; a client who still listens
        conn.execute(update(Conversation).where(Conversation.id == conv_id).values(attempts=store.MAX_CLAIMS))
        conn.execute(update(Client).values(opted_out=False))
    with RunningWorker(engine):
        wait_for(lambda: status_counts(engine).get("failed", 0) == 1, what="the conversation to be given up")
    with read_session(engine) as s:
        conv = s.get(Conversation, conv_id)
    assert "gave up after 5 claims" in conv.error and conv.attempts == 6
    assert agent_messages_per_conversation(engine) == {}


@pytest.fixture
def private_pg(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PgCluster, Engine]]:
    """A PostgreSQL cluster of this test's own (so it can be restarted), migrated, as the process's database."""
    with PgCluster() as cluster:
        monkeypatch.setenv("DATABASE_URL", cluster.create_database("agentops"))
        monkeypatch.setenv("BCRYPT_ROUNDS", "4")
        reset_settings()
        dispose_engines()
        upgrade_to_head(get_engine())
        yield cluster, get_engine()
        dispose_engines()


@pytest.mark.parametrize("lease_seconds, outlasts_lease", [(60, False), (2, True)])
def test_a_database_restart_mid_run_fails_nothing_and_sends_nothing_twice(
        private_pg, fake_openai, monkeypatch, lease_seconds: float, outlasts_lease: bool) -> None:
    cluster, engine = private_pg
    configure(monkeypatch, OPENAI_API_KEY="sk-test-loopback", OPENAI_BASE_URL=fake_openai.base_url,
              AGENT_MAX_CONCURRENT=5, AGENT_LEASE_SECONDS=lease_seconds)  # database retries: the checklist's 1 s, ×2
    fake_openai.set("ok", delay_seconds=0.5)
    ids = prepare(engine, 40)
    with RunningWorker(engine), RunningWorker(engine):
        wait_for(lambda: status_counts(engine).get("in_progress", 0) >= 8, what="both workers holding work")
        down_at = time.monotonic()
        cluster.restart(down_seconds=4)  # longer than the checklist's 3 attempts take
        up_at = time.monotonic()
        wait_for(lambda: status_counts(engine).get("pending", 0) + status_counts(engine).get("in_progress", 0) == 0,
                 timeout=30, what="every conversation to finish after the restart")
    counts = status_counts(engine)
    assert counts.get("failed", 0) == 0 and counts["completed"] + counts.get("opted_out", 0) == len(ids)
    assert set(agent_messages_per_conversation(engine).values()) == {1}  # sent once each
    assert any(down_at < t < up_at for t in fake_openai.answered_at), "no reply arrived while the database was down"
    # A reply is kept until the database is back; only one whose lease ran out meanwhile is asked for again.
    assert fake_openai.calls >= counts["completed"]
    assert (fake_openai.calls > counts["completed"]) is outlasts_lease


def test_a_worker_that_never_reached_its_database_exits_non_zero(monkeypatch, capsys) -> None:
    """`worker --max-seconds N` against a database that is down logged each failure, then exited 0 as if it had run:
    a supervisor or a deploy script read that as success."""
    import socket

    from core.cli import main

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed again below: nothing listens there
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg2://postgres@127.0.0.1:{port}/agentops")
    reset_settings()
    dispose_engines()
    code = main(["worker", "--max-seconds", "1"])
    err = capsys.readouterr().err
    dispose_engines()
    assert code == 1
    assert "stopped without its database. The database cannot be reached" in err and f"port {port}" in err
    assert "Traceback" not in err


def test_a_dropped_connection_at_stop_is_no_verdict_on_the_run(pg_engine: Engine, fake_openai, monkeypatch) -> None:
    """One pooled connection dropped (a restart, an idle reaper) just before the stopped heartbeat made a healthy run
    exit 1 (found by a review)."""
    configure(monkeypatch, OPENAI_API_KEY="sk-test-loopback", OPENAI_BASE_URL=fake_openai.base_url,
              AGENT_HEARTBEAT_SECONDS=3600, AGENT_MAX_CONCURRENT=1)
    prepare(pg_engine, 1)
    fake_openai.set("ok", delay_seconds=2.0)  # busy: the slot is full, so no claim touches the heartbeat pool

    def drop() -> None:  # a database restart / failover / idle-connection reaper, for the heartbeat pool only
        with pg_engine.connect() as c:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'agentops-relaxed' AND datname = current_database()"))
    threading.Timer(1.0, drop).start()
    worker = Worker(engine=pg_engine, settings=get_settings())
    worker.run(max_seconds=1.5)
    assert status_counts(pg_engine) == {"completed": 1} and worker.processed == 1  # it did its job
    with pg_engine.connect() as c:
        assert c.execute(text("SELECT 1")).scalar() == 1  # and the database is up
    assert worker.database_error is None, f"run_worker would exit 1: {worker.database_error!r}"[:200]


def test_a_connection_that_dies_after_the_completion_committed_fails_nothing(engine: Engine, fake_openai,
                                                                               monkeypatch) -> None:
    """The crash review: the completion committed, then the connection died on its way back to the pool and
    psycopg2 raised its own error (not SQLAlchemy's). The worker took it for the conversation's failure: "failed"
    logged and reported to Sentry for a conversation that was completed."""
    import psycopg2

    from core.worker import completer

    configure(monkeypatch, OPENAI_API_KEY="sk-test-loopback", OPENAI_BASE_URL=fake_openai.base_url,
              DB_RETRY_DELAY_SECONDS=0.05)
    fake_openai.set("ok", delay_seconds=0.05)
    [conv_id] = prepare(engine, 1)
    real, failures = store.complete_many, []

    def committed_then_dropped(*args: object, **kwargs: object) -> object:
        outcomes = real(*args, **kwargs)
        if not failures:
            failures.append(1)
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return outcomes

    monkeypatch.setattr(completer.store, "complete_many", committed_then_dropped)
    failed: list[str] = []

    async def reported_failed(_self: object, _conv_id: int, exc: BaseException) -> None:
        failed.append(str(exc))

    monkeypatch.setattr("core.worker.runner.Worker._fail", reported_failed)
    with RunningWorker(engine):
        wait_for(lambda: failures and status_counts(engine).get("completed", 0) == 1, what="the completion")
        time.sleep(0.5)  # the worker's handling of the dropped connection
    assert failed == [] and agent_messages_per_conversation(engine) == {conv_id: 1}
    with read_session(engine) as s:
        assert (s.get(Conversation, conv_id).status, s.get(Conversation, conv_id).error) == ("completed", None)
