"""The kill switch pushed over PostgreSQL LISTEN/NOTIFY, with polling as the fallback (and on SQLite).

The worker's poll interval is made very long where the push is under test, so only the push can explain a
worker that reacts; where polling is under test, the listener is kept away, so only polling can explain it.
"""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine, func, select, text

from core.auth import system_actor
from core.db import read_session
from core.models import Conversation, WorkerHeartbeat, utcnow
from core.services import controls
from core.uow import UnitOfWork
from core.worker import store
from core.worker.runner import Worker
from tests.support.workers import RunningWorker, configure, prepare, status_counts, wait_for

ADMIN = system_actor("test")
# Pushed: no re-read for an hour. Polled (listener down or SQLite): every 0.2 s.
PUSHED = {"AGENT_SETTINGS_RECHECK_SECONDS": 3600, "AGENT_SETTINGS_TTL_SECONDS": 0.2}


def _use_model(monkeypatch: pytest.MonkeyPatch, fake, **env: object) -> None:
    configure(monkeypatch, OPENAI_API_KEY="sk-test-key-for-loopback", OPENAI_BASE_URL=fake.base_url, **env)


def _acknowledged(engine: Engine, worker: Worker, version: int) -> bool:
    with read_session(engine) as s:
        beat = s.get(WorkerHeartbeat, worker.id)
    return beat is not None and beat.settings_version >= version


def _last_claim(engine: Engine) -> datetime:
    with read_session(engine) as s:
        return s.scalar(select(func.max(Conversation.started_at)))


def _terminate(engine: Engine, pid: int) -> None:
    """Kill the listener's server process, as a failover or an administrator would."""
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


def test_a_pushed_kill_switch_stops_claims_and_is_acknowledged_without_polling(pg_engine: Engine, fake_openai,
                                                                               monkeypatch) -> None:
    _use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=2, **PUSHED)
    fake_openai.set("ok", delay_seconds=0.1)
    prepare(pg_engine, 60)
    with RunningWorker(pg_engine) as worker:
        wait_for(lambda: worker.settings_cache.pushed, what="the listener to connect")
        wait_for(lambda: status_counts(pg_engine).get("completed", 0) >= 4, what="work to flow")
        off = controls.engage_kill_switch(actor=ADMIN, reason="test", uow=UnitOfWork(pg_engine))
        committed = utcnow()
        # Re-read once an hour, yet it acknowledges: the NOTIFY delivered at commit is what told it.
        wait_for(lambda: _acknowledged(pg_engine, worker, off.version), what="the worker to acknowledge the switch")
        wait_for(lambda: status_counts(pg_engine).get("in_progress", 0) == 0, what="in-flight work to finish")
        assert _last_claim(pg_engine) <= committed  # not one claim after the switch committed
        stopped_with = status_counts(pg_engine).get("pending", 0)
        assert stopped_with > 0
        on = controls.set_activation(actor=ADMIN, mode="full", reason="test", uow=UnitOfWork(pg_engine))
        wait_for(lambda: _acknowledged(pg_engine, worker, on.version), what="the worker to acknowledge 'full'")
        wait_for(lambda: status_counts(pg_engine).get("pending", 0) < stopped_with, what="claims to resume")
    assert worker.listener is not None and worker.listener.connections == 1


def test_the_listener_dropping_falls_back_to_polling(pg_engine: Engine, monkeypatch) -> None:
    # The listener stays away for a minute once dropped: only polling can bring the next change.
    configure(monkeypatch, AGENT_SETTINGS_LISTEN_RETRY_SECONDS=60, **PUSHED)
    prepare(pg_engine, 1, agent_type="rebooking", shop_id=1)
    with RunningWorker(pg_engine) as worker:
        wait_for(lambda: worker.listener.backend_pid is not None and worker.settings_cache.pushed,
                 what="the listener to connect")
        _terminate(pg_engine, worker.listener.backend_pid)
        wait_for(lambda: not worker.settings_cache.pushed, what="the worker to notice the listener is gone")
        off = controls.engage_kill_switch(actor=ADMIN, reason="test", uow=UnitOfWork(pg_engine))
        wait_for(lambda: _acknowledged(pg_engine, worker, off.version), what="polling to find the change")
        assert worker.listener.connections == 1 and worker.listener.backend_pid is None  # still not back


def test_the_listener_reconnects_and_pushes_again(pg_engine: Engine, monkeypatch) -> None:
    configure(monkeypatch, AGENT_SETTINGS_LISTEN_RETRY_SECONDS=0.2, **PUSHED)
    prepare(pg_engine, 1, agent_type="rebooking", shop_id=1)
    with RunningWorker(pg_engine) as worker:
        wait_for(lambda: worker.listener.backend_pid is not None, what="the listener to connect")
        first = worker.listener.backend_pid
        _terminate(pg_engine, first)
        wait_for(lambda: worker.listener.connections == 2 and worker.settings_cache.pushed,
                 what="the listener to reconnect")
        assert worker.listener.backend_pid not in (None, first)
        # Pushed again, so re-read once an hour: only the new connection's NOTIFY can explain the acknowledgement.
        off = controls.engage_kill_switch(actor=ADMIN, reason="test", uow=UnitOfWork(pg_engine))
        wait_for(lambda: _acknowledged(pg_engine, worker, off.version), what="the pushed change")


def test_without_push_the_worker_polls(pg_engine: Engine, monkeypatch) -> None:
    configure(monkeypatch, AGENT_SETTINGS_PUSH="false")
    prepare(pg_engine, 1, agent_type="rebooking", shop_id=1)
    with RunningWorker(pg_engine) as worker:
        assert worker.listener is None and not worker.settings_cache.pushed
        off = controls.engage_kill_switch(actor=ADMIN, reason="test", uow=UnitOfWork(pg_engine))
        wait_for(lambda: _acknowledged(pg_engine, worker, off.version), what="polling to find the change")


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's side is the tests above
def test_sqlite_has_no_listener_and_stops_by_polling(engine: Engine, fake_openai, monkeypatch) -> None:
    _use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=2)
    fake_openai.set("ok", delay_seconds=0.1)
    prepare(engine, 40)
    with RunningWorker(engine) as worker:
        assert worker.listener is None
        wait_for(lambda: status_counts(engine).get("completed", 0) >= 2, what="work to flow")
        off = controls.engage_kill_switch(actor=ADMIN, reason="test", uow=UnitOfWork(engine))
        committed = utcnow()
        wait_for(lambda: _acknowledged(engine, worker, off.version), what="polling to find the change")
        wait_for(lambda: status_counts(engine).get("in_progress", 0) == 0, what="in-flight work to finish")
    assert _last_claim(engine) <= committed and status_counts(engine).get("pending", 0) > 0


def test_a_claim_made_under_an_older_settings_version_takes_nothing(engine: Engine) -> None:
    prepare(engine, 5)
    with read_session(engine) as s:
        from core.queries.settings import get_activation_state

        seen = get_activation_state(s)
    controls.set_agent_type_enabled(actor=ADMIN, agent_type="upsell", enabled=False, reason="t", uow=UnitOfWork(engine))
    stale = store.claim(engine, worker_id="w", limit=5, scope=seen.scope(), lease_seconds=60,
                        settings_version=seen.version)
    current = store.claim(engine, worker_id="w", limit=5, scope=seen.scope(), lease_seconds=60,
                          settings_version=seen.version + 1)
    assert stale == [] and len(current) > 0


def test_every_settings_change_announces_itself_at_commit_only(pg_engine: Engine) -> None:
    prepare(pg_engine, 1, agent_type="rebooking", shop_id=1)
    raw = pg_engine.raw_connection()
    try:
        raw.driver_connection.autocommit = True
        with raw.driver_connection.cursor() as cur:
            cur.execute('LISTEN "agent_settings"')
        with UnitOfWork(pg_engine) as uow:  # changed, then rolled back: nothing announced
            controls.apply_settings_change(uow, actor=ADMIN, action="kill_switch.engage", reason="t",
                                           expected_version=None, apply=controls.switch_off)
        off = controls.engage_kill_switch(actor=ADMIN, reason="t", uow=UnitOfWork(pg_engine))
        conn = raw.driver_connection
        wait_for(lambda: conn.poll() or bool(conn.notifies), what="the NOTIFY")
        payloads = [n.payload for n in conn.notifies]
    finally:
        raw.invalidate()
    assert payloads == [str(off.version)]
