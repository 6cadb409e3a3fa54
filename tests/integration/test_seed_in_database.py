"""`seed --test-data load` at scale is generated inside PostgreSQL (core.seed.sql_load): the same shape as the row
generator, exact rollups, indexes and constraints back afterwards, and nothing left behind by a load that fails."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from core import rollups
from core.auth import system_actor
from core.db import read_session
from core.llm import cost_usd
from core.models import AgentInstance, Client, Conversation, Message, utcnow
from core.queries import metrics
from core.seed import content, messages, shape, sql_load
from core.seed.runner import seed
from core.templates import load_templates
from core.uow import UnitOfWork

ACTOR = system_actor("test")
COUNT = 6000


def _host(engine: Engine) -> tuple[list[dict], dict[int, list[dict]]]:
    seed(actor=ACTOR, engine=engine, size="load", conversations=0)
    with read_session(engine) as s:
        inst = [dict(r._mapping) for r in s.execute(select(
            AgentInstance.id, AgentInstance.shop_id, AgentInstance.agent_type, AgentInstance.config)
            .order_by(AgentInstance.id))]
        clients: dict[int, list[dict]] = {}
        for r in s.execute(select(Client.id, Client.shop_id, Client.first_name).order_by(Client.id)):
            clients.setdefault(r.shop_id, []).append(dict(r._mapping))
    return inst, clients


def _schema(engine: Engine) -> set[tuple[str, str]]:
    """Every index and constraint of the two tables, by name and definition."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('agent_conversations', 'agent_messages')"
            " UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid IN ('agent_conversations'::regclass, 'agent_messages'::regclass)"
            # Not the copies PostgreSQL keeps of a foreign key for each partition it refers to: named by number.
            " AND conparentid = 0"))
        return {(name, definition) for name, definition in rows}


def _within(observed: int, share: float, n: int) -> bool:
    """OBSERVED is within five standard deviations of SHARE × N (the data is deterministic: setseed)."""
    return abs(observed - share * n) <= 5 * math.sqrt(n * share * (1 - share))


def test_the_load_has_the_row_generators_shape_and_exact_rollups(pg_engine: Engine) -> None:
    inst, clients = _host(pg_engine)
    before, now = _schema(pg_engine), utcnow()
    n_conv, n_msg = sql_load.write(pg_engine, count=COUNT, days=30, now=now, instances=inst, clients_by_shop=clients,
                                   first_conv_id=1, chunk=2500, rebuild_indexes=True)
    assert _schema(pg_engine) == before, "every index and constraint is back, as the models define them"
    with read_session(pg_engine) as s:
        convs = s.execute(select(Conversation).order_by(Conversation.id)).scalars().all()
        msgs = s.execute(select(Message)).scalars().all()
        facts = messages.client_facts(s.connection())
    assert (n_conv, n_msg) == (COUNT, len(msgs)) and [c.id for c in convs] == list(range(1, COUNT + 1))
    assert [c.created_at for c in convs] == sorted(c.created_at for c in convs), "ids grow with time"
    assert now - timedelta(days=30) <= convs[0].created_at and convs[-1].created_at <= now
    by_status: dict[str, list[Conversation]] = {}
    for c in convs:
        by_status.setdefault(c.status, []).append(c)
    assert all(now - c.created_at < shape.PENDING_AGE for c in by_status.get("pending", []))
    assert all(now - c.created_at < shape.WAITING_AGE for c in by_status.get("waiting_response", []))
    assert _within(len(by_status["failed"]), shape.FAILED_SHARE, COUNT)
    assert _within(len(by_status["opted_out"]), shape.OPTED_OUT_SHARE, COUNT)
    _check_rows(convs, msgs, facts, {(i["shop_id"], i["agent_type"]): i["config"] for i in inst})
    with UnitOfWork(pg_engine) as uow:
        rollups.rebuild(uow.session, since=now - timedelta(days=31))
        uow.commit()
    with read_session(pg_engine) as s:
        summary = metrics.get_summary(s, actor=ACTOR, window_hours=24 * 30, now=now)
    assert summary.conversations == COUNT
    assert {k: v for k, v in summary.by_status.items() if v} == {k: len(v) for k, v in by_status.items()}


def _check_rows(convs: list[Conversation], msgs: list[Message], facts: dict[int, messages.ClientFacts],
                config: dict[tuple[int, str], dict]) -> None:
    specs = load_templates()
    per_conv: dict[int, list[Message]] = {}
    for m in msgs:
        per_conv.setdefault(m.conversation_id, []).append(m)
    replied = 0
    for c in convs:
        mine = sorted(per_conv.get(c.id, []), key=lambda m: m.role)  # agent before client
        if c.status in ("pending", "failed"):
            assert mine == [] and c.prompt_tokens == 0 and (c.error in content.ERRORS) == (c.status == "failed")
            continue
        agent = mine[0]
        assert agent.role == "agent" and agent.idempotency_key == f"conv:{c.id}:step:0"
        # The text the row generator (and the worker) renders for this client, sent at this moment.
        assert agent.content == messages.first_message(specs[c.agent_type], facts[c.client_id], agent.created_at,
                                                       config[c.shop_id, c.agent_type])
        assert c.response_time_ms >= shape.REPLY_MIN_MS and agent.latency_ms == c.response_time_ms
        assert shape.PROMPT_TOKENS[0] <= c.prompt_tokens < shape.PROMPT_TOKENS[1]
        assert float(c.cost_usd) == pytest.approx(cost_usd("gpt-4o-mini", prompt_tokens=c.prompt_tokens,
                                                           completion_tokens=c.completion_tokens))
        if c.status == "opted_out":
            assert [(m.role, m.content, m.created_at) for m in mine[1:]] == [("client", "STOP", c.completed_at)]
        elif c.status == "completed" and len(mine) == 2:
            replied += 1
            assert mine[1].content in content.CLIENT_REPLIES and mine[1].created_at > agent.created_at
    completed = sum(c.status == "completed" for c in convs)
    assert _within(replied, shape.CLIENT_REPLY_SHARE, completed)


def test_a_load_that_fails_leaves_the_database_as_it_was(pg_engine: Engine) -> None:
    inst, clients = _host(pg_engine)
    before = _schema(pg_engine)

    def interrupted(message: str) -> None:
        if message.startswith("conversations"):
            raise KeyboardInterrupt  # an operator's Ctrl-C after the first chunk

    with pytest.raises(KeyboardInterrupt):
        sql_load.write(pg_engine, count=COUNT, days=30, now=utcnow(), instances=inst, clients_by_shop=clients,
                       first_conv_id=1, chunk=2000, rebuild_indexes=True, progress=interrupted)
    with read_session(pg_engine) as s:
        assert s.scalar(select(func.count()).select_from(Conversation)) == 0
        assert s.scalar(select(func.count()).select_from(Message)) == 0
    assert _schema(pg_engine) == before


def test_a_seed_leaves_its_tables_vacuumed_so_the_open_count_skips_the_heap(pg_engine: Engine) -> None:
    """A fresh load read before autovacuum came by made Agent health fetch every open conversation from the heap."""
    seed(actor=ACTOR, engine=pg_engine, size="load", conversations=3000)
    with pg_engine.connect() as conn:
        pages = conn.execute(text(
            "SELECT c.relname, pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,"
            " c.relallvisible FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent IN ('agent_conversations'::regclass, 'agent_messages'::regclass)"
            " AND pg_relation_size(c.oid) > 0")).all()
        plan = conn.execute(text(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT status, count(*) FROM agent_conversations"
            " WHERE status IN ('pending', 'in_progress', 'waiting_response') AND created_at >= :since"
            " GROUP BY status"), {"since": utcnow() - timedelta(days=30)}).scalar_one()
    assert pages, "the load filled some partitions"
    assert [(name, n) for name, n, visible in pages if visible != n] == [], "every page is marked all-visible"
    scans = list(_nodes(plan[0]["Plan"]))
    assert any(n["Node Type"] == "Index Only Scan" for n in scans)
    assert sum(n.get("Heap Fetches", 0) for n in scans) == 0


def _nodes(node: dict):  # noqa: ANN202 - a plan node and everything under it
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
