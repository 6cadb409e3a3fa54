"""The agent runtime against a real OpenAI-compatible server on loopback, on SQLite and PostgreSQL."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, event, func, inspect, select, text

from core import rollups
from core.auth import system_actor
from core.db import read_session
from core.models import AgentMetric, Conversation, Message, WorkerHeartbeat
from core.queries.settings import Scope, get_activation_state
from core.worker import store
from tests.support.data import seed_minimal
from core.services import controls
from core.uow import UnitOfWork
from tests.support.workers import (
    RunningWorker, agent_messages_per_conversation, configure, prepare, status_counts, wait_for,
)

ADMIN = system_actor("test")


def done(engine: Engine, n: int) -> bool:
    counts = status_counts(engine)
    return sum(counts.get(s, 0) for s in ("completed", "failed", "opted_out")) >= n


def use_model(monkeypatch: pytest.MonkeyPatch, fake, **env: object) -> None:
    configure(monkeypatch, OPENAI_API_KEY="sk-test-key-for-loopback", OPENAI_BASE_URL=fake.base_url, **env)


def test_holds_conversations_through_the_openai_client(engine: Engine, fake_openai, monkeypatch) -> None:
    use_model(monkeypatch, fake_openai)
    ids = prepare(engine, 12)
    with RunningWorker(engine):
        wait_for(lambda: done(engine, 12), what="12 conversations")
    with read_session(engine) as s:
        convs = s.scalars(select(Conversation).where(Conversation.id.in_(ids))).all()
        opted_out = {c.id for c in convs if c.status == "opted_out"}
        for c in convs:
            if c.id in opted_out:
                continue
            assert (c.status, c.provider, c.prompt_tokens, c.completion_tokens) == ("completed", "openai", 120, 40)
            assert c.response_time_ms is not None and c.response_time_ms >= 0
            assert float(c.cost_usd) == pytest.approx((120 * 0.15 + 40 * 0.60) / 1e6)
            assert c.started_at <= c.completed_at
        msgs = s.scalars(select(Message).where(Message.conversation_id.in_(ids))).all()
        assert len(msgs) == len(ids) - len(opted_out)
        assert all(m.content.startswith("MODEL: ") and m.role == "agent" for m in msgs)
    assert fake_openai.calls == len(ids) - len(opted_out)


def test_offline_provider_without_api_key(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch)
    prepare(engine, 5)
    with RunningWorker(engine):
        wait_for(lambda: done(engine, 5), what="5 conversations")
    with read_session(engine) as s:
        providers = set(s.scalars(select(Conversation.provider).where(Conversation.status == "completed")))
    assert providers == {"offline"}


def test_rollups_match_raw_rows_after_the_worker(engine: Engine, fake_openai, monkeypatch) -> None:
    use_model(monkeypatch, fake_openai)
    prepare(engine, 15)
    with RunningWorker(engine):
        wait_for(lambda: done(engine, 15), what="15 conversations")

    def snapshot() -> list[tuple]:
        with read_session(engine) as s:
            return s.execute(select(AgentMetric.hour, AgentMetric.agent_instance_id, AgentMetric.created,
                                    AgentMetric.completed, AgentMetric.failed, AgentMetric.opted_out,
                                    AgentMetric.response_ms_sum, AgentMetric.prompt_tokens)
                             .order_by(AgentMetric.hour, AgentMetric.agent_instance_id)).all()

    incremental = snapshot()
    with UnitOfWork(engine) as uow:
        rollups.rebuild(uow.session)
        uow.commit()
    assert snapshot() == incremental


@pytest.mark.parametrize("mode, calls, error", [
    ("500", 3, "InternalServerError: Error code: 500"),
    ("400", 1, "BadRequestError: Error code: 400"),
    ("broken_json", 1, "JSONDecodeError"),
])
def test_failures_are_recorded_with_error_and_attempts(engine: Engine, fake_openai, monkeypatch, mode: str,
                                                       calls: int, error: str) -> None:
    use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=1, BREAKER_FAILURE_THRESHOLD=50)
    fake_openai.set(mode)
    [conv_id] = prepare(engine, 1, agent_type="rebooking", shop_id=1)
    with RunningWorker(engine):
        wait_for(lambda: done(engine, 1), what="the conversation to fail")
    with read_session(engine) as s:
        conv = s.get(Conversation, conv_id)
    assert conv.status == "failed" and error in conv.error and conv.attempts == 1
    assert conv.error.endswith(f"(after {calls} attempt{'s' if calls > 1 else ''})")
    assert fake_openai.calls == calls


def test_retry_after_is_honoured(engine: Engine, fake_openai, monkeypatch) -> None:
    use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=1, AGENT_RETRY_ATTEMPTS=2)
    fake_openai.set("429", retry_after="0.6")
    prepare(engine, 1, agent_type="rebooking", shop_id=1)
    started = time.monotonic()
    with RunningWorker(engine):
        wait_for(lambda: done(engine, 1), what="the conversation to fail")
    assert fake_openai.calls == 2
    assert time.monotonic() - started >= 0.6


def test_breaker_opens_defers_and_recovers(engine: Engine, fake_openai, monkeypatch) -> None:
    use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=1, BREAKER_RESET_SECONDS=1.0)
    fake_openai.set("500")
    ids = prepare(engine, 4, agent_type="rebooking", shop_id=1)
    with RunningWorker(engine) as worker:
        wait_for(lambda: worker.breaker.snapshot().state == "open", what="the breaker to open")
        assert fake_openai.calls == 5  # 3 attempts of the first, 2 of the second: 5 consecutive failures
        wait_for(lambda: status_counts(engine).get("in_progress", 0) == 0, what="the caught conversation's release")
        with read_session(engine) as s:
            statuses = dict(s.execute(select(Conversation.id, Conversation.status).where(Conversation.id.in_(ids))).all())
            deferred = s.scalars(select(Conversation).where(Conversation.status == "pending",
                                                            Conversation.next_attempt_at.is_not(None))).all()
        assert list(statuses.values()).count("failed") == 1
        assert deferred, "a conversation caught by the open breaker is deferred, not failed"
        fake_openai.set("ok")
        wait_for(lambda: status_counts(engine).get("completed", 0) == 3, what="recovery after half-open")
        assert worker.breaker.snapshot().state == "closed"


def test_one_breaker_does_not_serialise_calls(engine: Engine, fake_openai, monkeypatch) -> None:
    use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=10)
    fake_openai.set("ok", delay_seconds=0.3)
    prepare(engine, 20)
    with RunningWorker(engine):
        wait_for(lambda: done(engine, 20), what="20 conversations")
    assert fake_openai.max_concurrent >= 5  # a lock held around the call (pybreaker) would give 1


def test_kill_switch_stops_new_claims_within_a_second(engine: Engine, fake_openai, monkeypatch) -> None:
    use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=2)
    fake_openai.set("ok", delay_seconds=0.2)
    prepare(engine, 40)
    with RunningWorker(engine):
        wait_for(lambda: status_counts(engine).get("completed", 0) >= 2, what="work to start")
        state = controls.engage_kill_switch(actor=ADMIN, reason="test", uow=UnitOfWork(engine))
        time.sleep(1.5)
        with read_session(engine) as s:
            last_start = s.scalar(select(func.max(Conversation.started_at)))
        wait_for(lambda: status_counts(engine).get("in_progress", 0) == 0, what="in-flight work to finish")
    assert (last_start - state.changed_at).total_seconds() < 1.0
    assert status_counts(engine).get("pending", 0) > 0


def test_environment_switch_overrides_database(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch, AGENT_SYSTEM_ENABLED="false")
    prepare(engine, 3)
    with read_session(engine) as s:
        stored = get_activation_state(s)
    assert stored.mode == "full"
    with RunningWorker(engine) as worker:  # running, and it has read the stored "full" (its heartbeats say so)
        wait_for(lambda: _seen(engine, worker.id, stored.version), what="the worker to read the stored mode")
        first = _beat(engine, worker.id).last_seen_at
        wait_for(lambda: _beat(engine, worker.id).last_seen_at > first, what="a later heartbeat (more claim rounds)")
        assert _beat(engine, worker.id).env_enabled is False  # what the console and `core status` then show
    assert status_counts(engine) == {"pending": 3}
    configure(monkeypatch, AGENT_SYSTEM_ENABLED="true")
    with RunningWorker(engine) as worker:  # the same conversations were claimable all along: with the switch on
        wait_for(lambda: done(engine, 3), what="the conversations once the environment allows")
        assert _beat(engine, worker.id).env_enabled is True


def test_limited_scope_disabled_type_and_paused_instance(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch)
    prepare(engine, 60)
    controls.set_activation(actor=ADMIN, mode="limited", shops=[1], agent_types=["rebooking", "upsell", "custom"],
                            reason="staging", uow=UnitOfWork(engine))
    controls.set_agent_type_enabled(actor=ADMIN, agent_type="upsell", enabled=False, reason="bad", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        from core.models import AgentInstance

        custom = s.scalars(select(AgentInstance.id).where(AgentInstance.shop_id == 1,
                                                          AgentInstance.agent_type == "custom")).one()
    controls.set_instance_status(actor=ADMIN, instance_id=custom, status="paused", reason="t", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        expected = s.scalar(select(func.count()).select_from(Conversation).where(
            Conversation.shop_id == 1, Conversation.agent_type == "rebooking"))
    with RunningWorker(engine):
        wait_for(lambda: done(engine, expected), what="the in-scope conversations")
        time.sleep(0.5)
    with read_session(engine) as s:
        held = s.execute(select(Conversation.shop_id, Conversation.agent_type).where(
            Conversation.status != "pending")).all()
    assert set(held) <= {(1, "rebooking")} and len(held) == expected


def test_activate_percent_through_the_cli_limits_a_real_worker_to_the_chosen_shops(engine: Engine, monkeypatch,
                                                                                  capsys) -> None:
    from core.cli.main import main
    from core.queries.settings import shop_in_percent

    configure(monkeypatch)
    prepare(engine, 40)
    assert main(["activate", "--mode", "limited", "--percent", "75", "--reason", "staging: three shops in four"]) == 0
    assert [shop_in_percent(1, 75), shop_in_percent(2, 75)] == [True, False]  # so shop 1 is in, shop 2 out
    assert "shops: -; plus 75% of shops (1: 1 of 2)" in capsys.readouterr().out  # named, not only counted
    with read_session(engine) as s:
        by_shop = dict(s.execute(select(Conversation.shop_id, func.count()).group_by(Conversation.shop_id)).all())
    assert by_shop[1] > 0 and by_shop[2] > 0
    with RunningWorker(engine):  # claims go in creation order, shops interleaved: a leak would show before the end
        wait_for(lambda: done(engine, by_shop[1]), what="shop 1's conversations")
    with read_session(engine) as s:
        held = dict(s.execute(select(Conversation.shop_id, func.count()).where(Conversation.status != "pending")
                              .group_by(Conversation.shop_id)).all())
    assert held == {1: by_shop[1]}


def test_settings_unreadable_means_no_claims(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch)
    prepare(engine, 3)
    _rename(engine, "agent_settings", "agent_settings_away")
    try:
        with RunningWorker(engine) as worker:
            wait_for(lambda: _beat(engine, worker.id) is not None, what="the worker's first heartbeat")
            first = _beat(engine, worker.id).last_seen_at
            wait_for(lambda: _beat(engine, worker.id).last_seen_at > first, what="a later heartbeat (more rounds)")
            assert worker.settings_cache.get() is None and status_counts(engine) == {"pending": 3}
            _rename(engine, "agent_settings_away", "agent_settings")
            wait_for(lambda: done(engine, 3), what="claims once the settings can be read again")
    finally:
        if "agent_settings_away" in inspect(engine).get_table_names():
            _rename(engine, "agent_settings_away", "agent_settings")


def test_two_workers_claim_at_once_and_never_take_the_same_conversation(engine: Engine, fake_openai,
                                                                         monkeypatch) -> None:
    use_model(monkeypatch, fake_openai, AGENT_MAX_CONCURRENT=4)
    fake_openai.set("ok", delay_seconds=0.2)
    ids = prepare(engine, 40)
    with RunningWorker(engine) as a, RunningWorker(engine) as b:
        wait_for(lambda: done(engine, len(ids)), what="40 conversations")
    with read_session(engine) as s:
        attempts = s.scalars(select(Conversation.attempts).where(Conversation.id.in_(ids))).all()
    assert set(attempts) == {1}  # each claimed exactly once
    assert set(agent_messages_per_conversation(engine).values()) == {1} and fake_openai.calls == a.processed + b.processed
    assert a.processed > 0 and b.processed > 0
    assert fake_openai.max_concurrent > 4  # more in flight than one worker may hold: both busy at the same time


def test_heartbeat_reports_the_worker(engine: Engine, monkeypatch) -> None:
    configure(monkeypatch)
    prepare(engine, 3)
    with RunningWorker(engine) as worker:
        wait_for(lambda: done(engine, 3), what="3 conversations")
        wait_for(lambda: _beat(engine, worker.id) is not None and _beat(engine, worker.id).processed == 3,
                 what="a heartbeat with the work done")
        beat = _beat(engine, worker.id)
        assert beat.settings_version >= 2 and beat.breaker_state == "closed" and beat.rss_mb > 10
    assert _beat(engine, worker.id).stopped_at is not None


@pytest.mark.parametrize("scope", [Scope(), Scope(shops=frozenset({1}), agent_types=frozenset({"rebooking"}))])
def test_the_claim_reads_open_work_from_its_own_index_whatever_the_history(engine: Engine, backend: str,
                                                                            scope: Scope) -> None:
    # A history in every status, most of it finished. PostgreSQL's month partition of 400 rows fits in 5 pages,
    # where reading it whole is honestly cheaper than any index: there the history is large enough to matter.
    seed_minimal(engine, conversations=400 if backend == "sqlite" else 5000)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))  # statistics that make a shop's or the creation-time index look tempting
    _assert_the_claim_reads_only_its_index(engine, backend, scope)


def test_the_claim_reads_open_work_from_its_own_index_when_the_instances_were_never_analyzed(
        engine: Engine, backend: str) -> None:
    """Found on a 1M database loaded by `seed_load` on a server without autovacuum: agent_instances had no
    statistics, PostgreSQL guessed 2 active instances, turned the claim's EXISTS into a join driven from them and
    read every instance's conversations by its instance index: 20 ms a claim instead of 1."""
    from core.auth import system_actor
    from core.seed.runner import seed

    # The load's 40 shops and 360 instances, and a hundred conversations due: enough for that join to look cheap.
    seed(actor=system_actor("test"), engine=engine, size="load", conversations=2000 if backend == "sqlite" else 20000)
    with engine.begin() as conn:
        conn.execute(text("UPDATE agent_conversations SET status = 'pending', lease_expires_at = NULL, "
                          "next_attempt_at = NULL WHERE id IN (SELECT id FROM agent_conversations "
                          "ORDER BY created_at DESC LIMIT 100)"))
        if backend == "postgresql":  # the conversations analyzed (the load does that), the instances never
            conn.execute(text("ALTER TABLE agent_instances SET (autovacuum_enabled = false)"))
            conn.execute(text("SELECT pg_stat_reset_single_table_counters('agent_instances'::regclass)"))
            conn.execute(text("UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE relname = 'agent_instances'"))
            conn.execute(text("DELETE FROM pg_statistic WHERE starelid = 'agent_instances'::regclass"))
            conn.execute(text("ANALYZE agent_conversations"))
    _assert_the_claim_reads_only_its_index(engine, backend, Scope())


def _assert_the_claim_reads_only_its_index(engine: Engine, backend: str, scope: Scope) -> None:
    sent: list[tuple[str, object]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:  # noqa: ANN001
        if statement.lstrip().startswith("UPDATE agent_conversations SET status"):
            sent.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", keep)
    try:
        store.claim(engine, worker_id="w", limit=10, scope=scope, lease_seconds=60)
    finally:
        event.remove(Engine, "before_cursor_execute", keep)
    [(statement, parameters)] = sent
    explain = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(explain + statement, parameters))
        empty, plan = _as_parent_indexes(conn, plan) if backend == "postgresql" else (set(), plan)
    reads = [line for line in plan.splitlines() if "agent_conversations" in line and ("Scan" in line or "SCAN" in line
                                                                                    or "SEARCH" in line)
             and not any(f" on {name} " in line for name in empty)  # a partition with no row costs nothing
             and "Bitmap Heap Scan" not in line]  # its Bitmap Index Scan, below it, says which index it reads
    assert any("ix_agent_conversations_due" in line for line in reads), plan  # open work from its index ...
    assert all(any(ok in line for ok in ("ix_agent_conversations_due", "pk_agent_conversations", "PRIMARY KEY"))
               for line in reads), plan  # ... and no other way into the table than by id


def _as_parent_indexes(conn, plan: str) -> tuple[set[str], str]:  # noqa: ANN001 - a Connection
    """PLAN with each month partition's index named as the partitioned index it belongs to, and the partitions of
    agent_conversations that hold no row."""
    children = conn.execute(text(
        "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'I'")).all()
    for child, parent in children:
        plan = plan.replace(f" {child} ", f" {parent} ")
    partitions = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'agent_conversations'")).scalars().all()
    empty = {name for name in partitions if conn.execute(text(f"SELECT NOT EXISTS (SELECT 1 FROM {name})")).scalar()}
    return empty, plan


def _beat(engine: Engine, worker_id: str) -> WorkerHeartbeat | None:
    with read_session(engine) as s:
        return s.get(WorkerHeartbeat, worker_id)


def _seen(engine: Engine, worker_id: str, version: int) -> bool:
    beat = _beat(engine, worker_id)
    return beat is not None and beat.settings_version == version


def _rename(engine: Engine, old: str, new: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
