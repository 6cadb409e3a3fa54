"""The worker on one event loop: conversations in flight are tasks, claims run ahead, and what was claimed ahead
never reaches the model once the settings say stop. On SQLite and PostgreSQL (the pushed kill switch: PostgreSQL)."""
from __future__ import annotations

import threading

from sqlalchemy import Engine, func, select

from core.auth import system_actor
from core.db import read_session
from core.models import Conversation, WorkerHeartbeat
from core.services import controls
from core.uow import UnitOfWork
from core.worker.runner import DB_THREADS
from tests.support.workers import RunningWorker, configure, prepare, status_counts, wait_for

ADMIN = system_actor("test")


def _use_model(monkeypatch, fake, **env: object) -> None:  # noqa: ANN001
    configure(monkeypatch, OPENAI_API_KEY="sk-test-key-for-loopback", OPENAI_BASE_URL=fake.base_url, **env)


def test_claims_run_ahead_but_never_more_model_calls_than_slots(engine: Engine, fake_openai, monkeypatch) -> None:
    _use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=4)
    fake_openai.set("ok", delay_seconds=0.15)
    ids = prepare(engine, 30)
    held: list[int] = []

    def busy() -> bool:
        held.append(status_counts(engine).get("in_progress", 0))
        return fake_openai.concurrent >= 4

    with RunningWorker(engine) as worker:
        wait_for(busy, what="four model calls in flight")
        wait_for(lambda: worker.processed + status_counts(engine).get("opted_out", 0) == len(ids), what="all 30")
    assert fake_openai.max_concurrent == 4  # the slots, filled, and never one more
    assert max(held) > 4  # held beyond the slots: the claims ran ahead of need


def test_a_hundred_in_flight_cost_no_thread_each(engine: Engine, fake_openai, monkeypatch) -> None:
    _use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=60)
    fake_openai.set("ok", delay_seconds=1.0)
    prepare(engine, 60)
    before = _ours()
    with RunningWorker(engine):
        wait_for(lambda: fake_openai.concurrent >= 40, what="40 model calls in flight")
        threads = _ours() - before
    # The loop, the heartbeat, the listener, the completer, the review loop, the database threads (SQLite loads
    # each conversation on one) and asyncio's own few (name lookups as connections open); the threaded worker
    # this replaced had a thread per conversation in flight.
    assert threads <= DB_THREADS + 10 < 40, f"{threads} threads for 40 conversations in flight"


def test_what_was_claimed_ahead_is_handed_back_unsent_at_the_kill_switch(pg_engine: Engine, fake_openai,
                                                                         monkeypatch) -> None:
    _use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=10, AGENT_SETTINGS_RECHECK_SECONDS=3600)
    fake_openai.set("ok", delay_seconds=0.3)
    prepare(pg_engine, 80)
    with RunningWorker(pg_engine) as worker:
        wait_for(lambda: worker.settings_cache.pushed, what="the listener to connect")
        wait_for(lambda: worker.processed >= 10, what="work to flow")
        off = controls.engage_kill_switch(actor=ADMIN, reason="test", uow=UnitOfWork(pg_engine))
        wait_for(lambda: _acknowledged(pg_engine, worker.id, off.version), what="the worker to hear of it")
        calls_when_heard = fake_openai.calls
        wait_for(lambda: status_counts(pg_engine).get("in_progress", 0) == 0, what="in-flight work to finish")
        assert fake_openai.calls == calls_when_heard  # nothing claimed ahead was started once it knew
    with read_session(pg_engine) as s:
        pending = s.execute(select(func.count(), func.max(Conversation.attempts), func.count(Conversation.started_at))
                            .where(Conversation.status == "pending")).one()
    assert pending[0] > 0 and pending[1] == 0 and pending[2] == 0  # handed back as if never claimed


def _ours() -> int:
    """Threads in this process but the loopback model's own (one per connection it serves)."""
    return sum("process_request_thread" not in t.name for t in threading.enumerate())


def _acknowledged(engine: Engine, worker_id: str, version: int) -> bool:
    with read_session(engine) as s:
        beat = s.get(WorkerHeartbeat, worker_id)
    return beat is not None and beat.settings_version >= version
