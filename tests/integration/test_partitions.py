"""Monthly partitions (PostgreSQL) and retention (both databases): the schema, migration 0011 on a populated
database, `ensure_partitions`, and `retention --keep-months N` dropping exactly the old months once safe."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from core import rollups
from core.auth import system_actor
from core.cli import main
from core.errors import Conflict, NotFound, PermissionDenied, UserInputError
from core.models import (
    AgentInstance, AgentMetric, AgentMetricDaily, AgentMetricHourlyByType, AgentResponseDailyByType,
    AgentResponseHourlyByType, AuditRecord, Conversation, Message, ReviewState, utcnow,
)
from core.models.conversations import OPEN_STATUSES
from core.partitions import add_months, ensure_partitions, month_start, partitions_of, suffix
from core.retention import cutoff
from core.rollups_sums import SUM_FOLDS
from core.services.retention import apply_retention
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal

SYSTEM = system_actor("test")


def _rows(engine: Engine, model, order) -> list[tuple]:  # noqa: ANN001 - a model and its ordering columns
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(model).order_by(*order))]


def _rollup_figures(engine: Engine) -> list[list[tuple]]:
    """Every rollup row retention must leave as it was."""
    daily, hourly, by_type = AgentMetricDaily, AgentResponseHourlyByType, AgentResponseDailyByType
    sums = AgentMetricHourlyByType
    return [_rows(engine, AgentMetric, [AgentMetric.hour, AgentMetric.agent_instance_id]),
            _rows(engine, sums, [sums.hour, sums.agent_type]),
            _rows(engine, daily, [daily.day, daily.shop_id, daily.agent_type]),
            _rows(engine, hourly, [hourly.hour, hourly.agent_type]),
            _rows(engine, by_type, [by_type.day, by_type.agent_type])]


def _close_old_open_work(engine: Engine, before: datetime) -> int:
    """Finish whatever the seed left open before BEFORE, then recompute the rollups from the raw rows."""
    with UnitOfWork(engine) as uow:
        n = uow.session.execute(update(Conversation).where(Conversation.created_at < before, text(OPEN_STATUSES))
                                .values(status="failed", completed_at=before, error="closed by the test")).rowcount
        rollups.rebuild(uow.session)
        uow.commit()
    return n


def _count(engine: Engine, model, *where) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model).where(*where))


def test_fresh_postgres_tables_are_partitioned_by_month(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        ensure_partitions(conn, utcnow())
        kinds = dict(conn.execute(text("SELECT relname, relkind FROM pg_class WHERE relname IN "
                                       "('agent_conversations', 'agent_messages')")).all())
        months = [suffix(add_months(month_start(utcnow()), n)) for n in range(3)]
        for table in ("agent_conversations", "agent_messages"):
            assert {f"{table}_{m}" for m in months} | {f"{table}_default"} <= set(partitions_of(conn, table))
        pk = conn.execute(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                               "WHERE conname = 'pk_agent_conversations'")).scalar_one()
    assert kinds == {"agent_conversations": "p", "agent_messages": "p"}
    assert pk == "PRIMARY KEY (id, created_at)"


def test_a_month_whose_rows_sit_in_the_default_partition_is_left_there(pg_engine: Engine) -> None:
    seed_minimal(pg_engine, conversations=10)
    far = datetime(2031, 3, 9, 12, tzinfo=timezone.utc)  # no partition for it yet: the row goes to DEFAULT
    with UnitOfWork(pg_engine) as uow:
        conv = uow.session.scalars(select(Conversation).limit(1)).one()
        copy = Conversation(**{c.key: getattr(conv, c.key) for c in Conversation.__table__.c if c.key != "id"})
        copy.created_at = far
        uow.session.add(copy)
        uow.session.flush()
        uow.session.add(Message(conversation_id=copy.id, role="client", content="hi", created_at=far))
        uow.commit()
    with pg_engine.begin() as conn:
        plan = ensure_partitions(conn, far)
        held = conn.scalar(text("SELECT count(*) FROM agent_messages_default WHERE conversation_created_at = :t"),
                           {"t": far})
    assert plan.skipped == ["y2031m03"] and plan.created == ["y2031m04", "y2031m05"]
    assert held == 1  # the message found its conversation's month by itself (the column's default)


def test_retention_drops_exactly_the_old_months_and_keeps_the_rollups(engine: Engine, backend: str) -> None:
    now = utcnow()
    seed_minimal(engine, conversations=300, days=95)
    keep_from = cutoff(now, 1)
    _close_old_open_work(engine, keep_from)
    with UnitOfWork(engine) as uow:  # a review of an old conversation goes with it (no cascade on PostgreSQL)
        old_id = uow.session.scalar(select(Conversation.id).where(Conversation.created_at < keep_from).limit(1))
        uow.session.add(ReviewState(conversation_id=old_id, shop_id=1, agent_type="x", state="reviewed"))
        uow.commit()
    kept = _count(engine, Conversation, Conversation.created_at >= keep_from)
    kept_messages = _count(engine, Message, Message.conversation_created_at >= keep_from)
    old = _count(engine, Conversation, Conversation.created_at < keep_from)
    figures = _rollup_figures(engine)
    assert old > 0 and kept > 0

    result = apply_retention(actor=SYSTEM, uow=UnitOfWork(engine), keep_months=1, now=now)

    assert result.dropped and sum(m.conversations for m in result.months) == old
    assert _count(engine, Conversation, Conversation.created_at < keep_from) == 0
    assert _count(engine, Message, Message.conversation_created_at < keep_from) == 0
    assert _count(engine, Conversation, Conversation.created_at >= keep_from) == kept
    assert _count(engine, Message, Message.conversation_created_at >= keep_from) == kept_messages
    assert _count(engine, ReviewState, ReviewState.conversation_id == old_id) == 0
    assert _rollup_figures(engine) == figures
    with UnitOfWork(engine) as uow:  # a rebuild recomputes from the raw rows held: never the dropped months'
        rollups.rebuild(uow.session)
        uow.commit()
    assert _rollup_figures(engine) == figures
    with Session(engine) as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.action == "retention.drop")).one()
    with engine.connect() as conn:
        if backend == "postgresql":
            gone = {f"agent_conversations_{suffix(m)}" for m in _months(now - timedelta(days=95), keep_from)}
            assert gone and not gone & set(partitions_of(conn, "agent_conversations"))
            assert f"agent_conversations_{suffix(keep_from)}" in partitions_of(conn, "agent_conversations")
    assert record.outcome == "ok" and record.after["conversations"] == old
    with pytest.raises(NotFound, match="Nothing to drop"):
        apply_retention(actor=SYSTEM, uow=UnitOfWork(engine), keep_months=1, now=now)


def _months(first: datetime, before: datetime) -> list[datetime]:
    month, out = month_start(first), []
    while month < before:
        out.append(month)
        month = add_months(month, 1)
    return out


def test_retention_refuses_while_a_month_is_not_safe(engine: Engine) -> None:
    now = utcnow()
    seed_minimal(engine, conversations=200, days=95)
    keep_from = cutoff(now, 1)
    _close_old_open_work(engine, keep_from)
    with UnitOfWork(engine) as uow:  # one old conversation open again: its outcome is not in any rollup yet
        conv = uow.session.scalars(select(Conversation).where(Conversation.created_at < keep_from).limit(1)).one()
        conv.status = "pending"
        uow.commit()
    before = _count(engine, Conversation)
    with pytest.raises(Conflict, match="still open"):
        apply_retention(actor=SYSTEM, uow=UnitOfWork(engine), keep_months=1, now=now)
    assert _count(engine, Conversation) == before
    with Session(engine) as s:
        refused = s.scalars(select(AuditRecord).where(AuditRecord.action == "retention.drop")).one()
    assert refused.outcome == "refused" and "still open" in refused.reason


def test_retention_refuses_months_the_rollups_do_not_cover(engine: Engine) -> None:
    now = utcnow()
    seed_minimal(engine, conversations=200, days=95)
    keep_from = cutoff(now, 1)
    _close_old_open_work(engine, keep_from)
    with UnitOfWork(engine) as uow:  # the hourly rollups of the old months lost
        for model in (AgentMetric, *(fold[0] for fold in SUM_FOLDS)):  # fine rows and the folded sums
            uow.session.execute(model.__table__.delete().where(model.hour < keep_from))
        uow.commit()
    with pytest.raises(Conflict, match="hourly rollups count"):
        apply_retention(actor=SYSTEM, uow=UnitOfWork(engine), keep_months=1, now=now)


def test_retention_refuses_months_whose_daily_histograms_fall_short(engine: Engine) -> None:
    now = utcnow()
    seed_minimal(engine, conversations=200, days=95)
    keep_from = cutoff(now, 1)
    _close_old_open_work(engine, keep_from)
    with UnitOfWork(engine) as uow:  # one old day's histogram lost: the month's days no longer add up to its hours
        day = uow.session.scalar(select(func.min(AgentResponseDailyByType.day)))
        uow.session.execute(AgentResponseDailyByType.__table__.delete().where(AgentResponseDailyByType.day == day))
        uow.commit()
    with pytest.raises(Conflict, match="daily histograms hold"):
        apply_retention(actor=SYSTEM, uow=UnitOfWork(engine), keep_months=1, now=now)


def test_retention_input_and_permission(engine: Engine) -> None:
    with pytest.raises(UserInputError, match="1 or more"):
        apply_retention(actor=SYSTEM, uow=UnitOfWork(engine), keep_months=0)
    with pytest.raises(PermissionDenied):
        apply_retention(actor=ROLE_ACTORS["support"], uow=UnitOfWork(engine), keep_months=1)
    long_ago = datetime(2001, 1, 15, tzinfo=timezone.utc)  # before any month a test made a partition for
    with pytest.raises(NotFound, match="Nothing to drop"):
        apply_retention(actor=SYSTEM, uow=UnitOfWork(engine), keep_months=1, now=long_ago)


def test_retention_command(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    now = utcnow()
    seed_minimal(engine, conversations=120, days=70)
    _close_old_open_work(engine, cutoff(now, 1))
    with pytest.raises(SystemExit) as exited:
        main(["retention", "--keep-months", "0", "--yes"])
    assert exited.value.code == 2
    assert "--keep-months: the value must be a whole number from 1 to 1,200" in capsys.readouterr().err
    assert main(["retention", "--keep-months", "1", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dropped"] is False and plan["conversations"] > 0
    assert main(["retention", "--keep-months", "1"]) == 2  # not confirmed: nothing dropped
    assert "add --yes" in capsys.readouterr().err
    assert _count(engine, Conversation, Conversation.created_at < cutoff(now, 1)) == plan["conversations"]
    assert main(["retention", "--keep-months", "1", "--yes"]) == 0
    assert f"dropped {plan['conversations']:,} conversations" in capsys.readouterr().out
    assert main(["retention", "--keep-months", "1", "--yes"]) == 1
    assert "Nothing to drop" in capsys.readouterr().err


def test_the_worker_claims_and_completes_across_months(engine: Engine) -> None:
    from core.llm import Reply
    from core.queries.settings import Scope
    from core.worker import store

    now = utcnow()
    seed_minimal(engine, conversations=150, days=95)
    with UnitOfWork(engine) as uow:  # open work in an old month (a retry long due) and in the current one
        old = uow.session.scalar(select(Conversation.id).join(
            AgentInstance, AgentInstance.id == Conversation.agent_instance_id).where(
            AgentInstance.status == "active", Conversation.created_at < add_months(month_start(now), -1),
            Conversation.status == "completed").limit(1))
        uow.session.execute(update(Conversation).where(Conversation.id == old).values(status="pending"))
        uow.commit()
    claimed = store.claim(engine, worker_id="w", limit=500, scope=Scope(), lease_seconds=60)
    assert old in claimed and len(claimed) > 1
    reply = Reply(text="see you", prompt_tokens=3, completion_tokens=4, provider="fake", model="gpt-4o-mini",
                  latency_ms=5)
    with UnitOfWork(engine) as uow:
        uow.session.execute(Message.__table__.delete().where(Message.conversation_id == old))
        uow.commit()
    assert store.complete(engine, conversation_id=old, worker_id="w", reply=reply, response_ms=5).accepted
    with engine.connect() as conn:
        conv_created = conn.scalar(select(Conversation.created_at).where(Conversation.id == old))
        stored = conn.scalars(select(Message.conversation_created_at).where(Message.conversation_id == old)).all()
    assert stored == [conv_created]
    assert not store.complete(engine, conversation_id=old, worker_id="w", reply=reply, response_ms=5).accepted
    with pytest.raises(Conflict, match="nothing was saved"), UnitOfWork(engine) as uow:  # the key refuses a second copy
        uow.session.add(Message(conversation_id=old, role="agent", content="again", created_at=utcnow(),
                                idempotency_key=f"conv:{old}:step:0"))
        uow.commit()


def test_each_probe_cycle_makes_the_months_ahead(pg_engine: Engine) -> None:
    from core import probes

    ahead = suffix(add_months(month_start(utcnow()), 2))
    with pg_engine.begin() as conn:
        ensure_partitions(conn, utcnow())
        for table in ("agent_messages", "agent_conversations"):  # as if the month had never been made
            conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {table}_{ahead}"))
            conn.execute(text(f"DROP TABLE {table}_{ahead}"))
    probes.run_once(pg_engine, [])
    with pg_engine.connect() as conn:
        for table in ("agent_messages", "agent_conversations"):
            assert f"{table}_{ahead}" in partitions_of(conn, table)
