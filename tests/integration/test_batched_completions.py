"""Completions in batches: one statement for many replies, with every guarantee of one at a time."""
from __future__ import annotations

from sqlalchemy import Engine, select, text, update

from core import rollups
from core.db import read_session
from core.llm import Reply
from core.models import AgentMetric, AgentResponseBucket, Conversation
from core.queries.settings import get_activation_state
from core.uow import UnitOfWork
from core.worker import store
from tests.support.workers import RunningWorker, agent_messages_per_conversation, configure, prepare, wait_for


def _reply(n: int) -> Reply:
    return Reply(text=f"Hi {n}!", prompt_tokens=10 + n, completion_tokens=n, provider="openai", model="gpt-4o-mini",
                 latency_ms=5)


def _rollups(engine: Engine) -> tuple[list, list]:
    with read_session(engine) as s:
        metrics = s.execute(select(AgentMetric.hour, AgentMetric.agent_instance_id, AgentMetric.completed,
                                   AgentMetric.response_ms_sum, AgentMetric.prompt_tokens, AgentMetric.cost_usd)
                            .order_by(AgentMetric.hour, AgentMetric.agent_instance_id)).all()
        buckets = s.execute(select(AgentResponseBucket.hour, AgentResponseBucket.agent_instance_id,
                                   AgentResponseBucket.bucket, AgentResponseBucket.count)
                            .order_by(AgentResponseBucket.hour, AgentResponseBucket.agent_instance_id,
                                      AgentResponseBucket.bucket)).all()
    return metrics, buckets


def test_a_batch_stores_each_reply_once_skips_a_lost_lease_and_keeps_the_rollups_exact(engine: Engine) -> None:
    ids = prepare(engine, 8)
    with read_session(engine) as s:
        state = get_activation_state(s)
    claimed = store.claim(engine, worker_id="A", limit=8, scope=state.scope(), lease_seconds=60)
    assert sorted(claimed) == sorted(ids)
    lost, sent, rest = claimed[0], claimed[1], claimed[2:]
    with engine.begin() as conn:  # another worker took LOST over
        conn.execute(update(Conversation).where(Conversation.id == lost).values(lease_owner="B"))
    assert store.complete(engine, conversation_id=sent, worker_id="A", reply=_reply(0), response_ms=50).accepted
    with engine.begin() as conn:  # SENT's message exists, yet it is held again (a completion retried after a blip)
        conn.execute(update(Conversation).where(Conversation.id == sent).values(status="in_progress", lease_owner="A"))
    batch = [store.Completion(conversation_id=i, reply=_reply(n), response_ms=40 * n + 5)
             for n, i in enumerate(claimed)]
    outcomes = store.complete_many(engine, worker_id="A", batch=batch)
    assert [outcomes[i].accepted for i in rest] == [True] * len(rest)
    assert not outcomes[lost].accepted and not outcomes[sent].accepted
    assert agent_messages_per_conversation(engine) == {i: 1 for i in [sent, *rest]}


def test_a_batch_adds_to_the_rollups_exactly_what_a_rebuild_finds(engine: Engine) -> None:
    prepare(engine, 12)
    with read_session(engine) as s:
        state = get_activation_state(s)
    claimed = store.claim(engine, worker_id="A", limit=12, scope=state.scope(), lease_seconds=60)
    batch = [store.Completion(conversation_id=i, reply=_reply(n), response_ms=300 * n + 5)
             for n, i in enumerate(claimed)]
    assert all(o.accepted for o in store.complete_many(engine, worker_id="A", batch=batch).values())
    assert _rollups_match_a_rebuild(engine)


def _rollups_match_a_rebuild(engine: Engine) -> bool:
    incremental = _rollups(engine)
    with UnitOfWork(engine) as uow:
        rollups.rebuild(uow.session)
        uow.commit()
    return _rollups(engine) == incremental


def test_a_busy_worker_completes_in_batches_and_sends_each_reply_once(pg_engine: Engine, fake_openai,
                                                                      monkeypatch) -> None:
    configure(monkeypatch, OPENAI_API_KEY="sk-test-loopback", OPENAI_BASE_URL=fake_openai.base_url,
              AGENT_MAX_CONCURRENT=20)
    fake_openai.set("ok", delay_seconds=0.05)
    ids = prepare(pg_engine, 120)
    with RunningWorker(pg_engine) as worker:
        wait_for(lambda: len(agent_messages_per_conversation(pg_engine)) + _opted_out(pg_engine) == len(ids),
                 timeout=60, what="every conversation")
    assert set(agent_messages_per_conversation(pg_engine).values()) == {1}
    assert worker.completer.completions == len(ids) - _opted_out(pg_engine)
    assert worker.completer.batches < worker.completer.completions  # some replies shared a statement
    assert _rollups_match_a_rebuild(pg_engine)


def _opted_out(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM agent_conversations WHERE status = 'opted_out'")).scalar_one()


def test_model_calls_in_flight_never_exceed_the_setting_while_replies_are_stored(engine: Engine, fake_openai,
                                                                                 monkeypatch) -> None:
    configure(monkeypatch, OPENAI_API_KEY="sk-test-loopback", OPENAI_BASE_URL=fake_openai.base_url,
              AGENT_MAX_CONCURRENT=3)
    fake_openai.set("ok", delay_seconds=0.05)
    ids = prepare(engine, 30)
    with RunningWorker(engine):
        wait_for(lambda: len(agent_messages_per_conversation(engine)) + _opted_out(engine) == len(ids),
                 timeout=60, what="every conversation")
    assert 1 < fake_openai.max_concurrent <= 3  # slots refilled while replies are stored, never beyond the setting
    assert set(agent_messages_per_conversation(engine).values()) == {1}
