"""The worker's database steps. Each is one short transaction; completions check the lease."""
from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Row,
    Update,
    bindparam,
    case,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import rollups
from core.db import hot_bind, relaxed_bind, write_bind
from core.llm import Reply
from core.models import AgentInstance, AgentSettings, Conversation, Message, WorkerHeartbeat, utcnow
from core.models.conversations import CLAIMABLE, DUE_AT
from core.queries.settings import Scope
from core.worker.context import CLAIMED_COLUMNS, Loaded, TemplateCache, claimed_prompt_query

# A conversation claimed this many times without finishing is failed instead of tried again.
MAX_CLAIMS = 5


def _session(engine: Engine) -> Session:
    return Session(bind=write_bind(engine), expire_on_commit=False)


def _scope_filters(scope: Scope) -> list:
    """The scope as SQL: a plain translation of its sets (the rule itself is ActivationState.scope)."""
    c = Conversation
    filters = []
    if scope.shops is not None:  # "+ 0": never a reason to walk a shop's whole history by its shop index
        filters.append((c.shop_id + 0).in_(sorted(scope.shops)))
    if scope.agent_types is not None:
        filters.append(c.agent_type.in_(sorted(scope.agent_types)))
    if scope.disabled_agent_types:
        filters.append(c.agent_type.not_in(sorted(scope.disabled_agent_types)))
    return filters


_DUE_AT = literal_column(DUE_AT, type_=Conversation.__table__.c.created_at.type)


def claim(engine: Engine, *, worker_id: str, limit: int, scope: Scope, lease_seconds: float,
          settings_version: int | None = None) -> list[int]:
    """Take up to LIMIT due conversations in scope (pending, or whose lease expired) under a lease.

    One statement: UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING id, so
    workers on many machines never wait for each other's rows and never take the same one.
    With SETTINGS_VERSION, nothing is claimed once the settings have moved past it (see claim_statement).
    """
    stmt = claim_statement(worker_id=worker_id, limit=limit, scope=scope, lease_seconds=lease_seconds, now=utcnow(),
                           settings_version=settings_version)
    # Claims need not wait for the WAL flush: one lost in a crash leaves the conversation pending, unsent.
    with relaxed_bind(engine).begin() as conn:
        return list(conn.scalars(stmt))


def claim_and_load(engine: Engine, *, worker_id: str, limit: int, scope: Scope, lease_seconds: float,
                   settings_version: int | None, templates: TemplateCache) -> list[tuple[int, Loaded | None]]:
    """The claim; on PostgreSQL each claimed conversation comes back with what its prompt needs, in the same
    round trip (the claim's UPDATE … RETURNING joined to client, shop and appointment). SQLite: ids only."""
    now = utcnow()
    params = {"c_worker": worker_id, "c_now": now, "c_until": now + timedelta(seconds=lease_seconds),
              "c_version": settings_version}
    if engine.dialect.name != "postgresql":
        with relaxed_bind(engine).begin() as conn:
            return [(row.id, None) for row in conn.execute(_claim_once(scope, limit, settings_version is not None,
                                                                       load=False), params)]
    with one_statement(relaxed_bind(engine)) as conn:
        rows = conn.execute(_claim_once(scope, limit, settings_version is not None, load=True), params).all()
        return [(row.id, Loaded(row, templates.get(conn, row.agent_type))) for row in rows]


@contextmanager
def one_statement(bind: Engine) -> Iterator[Connection]:
    """A PostgreSQL connection in autocommit, for a write that is one statement (so its own transaction): no
    BEGIN and COMMIT round trips around it. The template read a claim may add is a plain read."""
    with bind.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


@functools.lru_cache(maxsize=512)
def _claim_once(scope: Scope, limit: int, versioned: bool, *, load: bool) -> Executable:
    """The worker's claim (and, with LOAD, its prompt rows) built once per scope and size: each call only binds
    its worker, time, lease and settings version."""
    now = bindparam("c_now", type_=Conversation.__table__.c.started_at.type)
    stmt = _claim_update(worker_id=bindparam("c_worker"), limit=limit, scope=scope, now=now,
                         until=bindparam("c_until", type_=now.type),
                         settings_version=bindparam("c_version") if versioned else None,
                         returning=CLAIMED_COLUMNS if load else ())
    return claimed_prompt_query(stmt.cte("claimed")) if load else stmt


def claim_statement(*, worker_id: str, limit: int, scope: Scope, lease_seconds: float, now: datetime,
                    settings_version: int | None = None) -> Update:
    """The claim as one UPDATE … RETURNING id (also what tests and benchmarks EXPLAIN)."""
    return _claim_update(worker_id=worker_id, limit=limit, scope=scope, now=now,
                         until=now + timedelta(seconds=lease_seconds), settings_version=settings_version)


def _claim_update(*, worker_id: object, limit: int, scope: Scope, now: object, until: object,
                  settings_version: object | None, returning: Sequence = ()) -> Update:
    c = Conversation
    # A scalar subquery, not EXISTS: PostgreSQL turns EXISTS into a join it may drive from agent_instances (with
    # stale statistics it did: every instance's conversations read, 20 ms a claim at 1M); a scalar subquery stays a
    # check on each candidate read in due order from the claimable index, whatever the statistics say.
    instance_status = select(AgentInstance.status).where(AgentInstance.id == c.agent_instance_id).scalar_subquery()
    # The scope was read at SETTINGS_VERSION: a claim that starts after any later change committed takes nothing,
    # so a kill switch stops claims at its commit, before any worker has even heard of it.
    current = ([select(AgentSettings.id).where(AgentSettings.id == 1, AgentSettings.version == settings_version)
                .exists()] if settings_version is not None else [])
    # The index's own predicate and key, word for word, so every planner reads open work from it in due order
    # and stops after LIMIT rows: held rows wait at their lease's end, finished ones are not in it at all.
    candidates = (select(c.id).where(text(CLAIMABLE), _DUE_AT <= now, instance_status == "active", *current,
                                     *_scope_filters(scope))
                  .order_by(_DUE_AT).limit(limit).with_for_update(skip_locked=True, of=c))
    return (update(c).where(c.id.in_(candidates.scalar_subquery())).values(
        status="in_progress", lease_owner=worker_id, lease_expires_at=until, started_at=now, attempts=c.attempts + 1, next_attempt_at=None).returning(*(returning or (c.id,))))


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    reason: str = ""


_FINISHED = Conversation.__table__.c
_ROLLUP_FIELDS = (_FINISHED.id, _FINISHED.created_at, _FINISHED.agent_instance_id, _FINISHED.shop_id,
                  _FINISHED.agent_type, _FINISHED.status, _FINISHED.response_time_ms, _FINISHED.prompt_tokens,
                  _FINISHED.completion_tokens, _FINISHED.cost_usd)


def _finish_held(conn: Connection, conversation_id: int, worker_id: str, **values: object) -> Row | None:
    """Finish a conversation only while WORKER_ID still holds its lease; returns what the rollup needs."""
    return conn.execute(
        update(Conversation).where(Conversation.id == conversation_id, Conversation.lease_owner == worker_id,
                                   Conversation.status == "in_progress")
        .values(lease_owner=None, lease_expires_at=None, **values).returning(*_ROLLUP_FIELDS)).one_or_none()


def complete(engine: Engine, *, conversation_id: int, worker_id: str, reply: Reply, response_ms: int) -> Outcome:
    """Store the outgoing message and finish the conversation, unless the lease was lost meanwhile."""
    if engine.dialect.name == "postgresql":
        return _complete_in_one_statement(engine, conversation_id, worker_id, reply, response_ms)
    now = utcnow()
    with write_bind(engine).connect() as conn:
        tx = conn.begin()
        row = _finish_held(conn, conversation_id, worker_id, status="completed", completed_at=now,
                           response_time_ms=response_ms, prompt_tokens=reply.prompt_tokens,
                           completion_tokens=reply.completion_tokens, cost_usd=reply.cost_usd,
                           provider=reply.provider, error=None)
        if row is None:
            tx.rollback()
            return Outcome(False, "lease lost: another worker holds this conversation")
        try:
            conn.execute(insert(Message).values(
                conversation_id=conversation_id, role="agent", content=reply.text, created_at=now,
                prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                latency_ms=int(reply.latency_ms), idempotency_key=f"conv:{conversation_id}:step:0",
                conversation_created_at=row.created_at))
        except IntegrityError:
            tx.rollback()
            return Outcome(False, "already sent: this message's idempotency key exists")
        rollups.record_finished(conn, row)
        tx.commit()
        return Outcome(True)


def finish_without_reply(engine: Engine, *, conversation_id: int, worker_id: str, status: str, error: str | None,
                         provider: str | None) -> Outcome:
    """Mark a held conversation failed (with the error) or opted_out; rejected if the lease was lost."""
    with write_bind(engine).begin() as conn:
        row = _finish_held(conn, conversation_id, worker_id, status=status, completed_at=utcnow(),
                           error=error or None, provider=provider)
        if row is None:
            return Outcome(False, "lease lost")
        rollups.record_finished(conn, row)
        return Outcome(True)


def release(engine: Engine, *, conversation_id: int, worker_id: str, retry_at: datetime | None) -> Outcome:
    """Give a held conversation back, due at RETRY_AT (breaker open); the claim does not count as an attempt."""
    with write_bind(engine).begin() as conn:
        n = conn.execute(update(Conversation).where(
            Conversation.id == conversation_id, Conversation.lease_owner == worker_id,
            Conversation.status == "in_progress").values(
            status="pending", lease_owner=None, lease_expires_at=None, next_attempt_at=retry_at, started_at=None,
            attempts=Conversation.attempts - 1)).rowcount
        return Outcome(bool(n), "" if n else "lease lost")


def renew_leases(engine: Engine, *, worker_id: str, ids: Sequence[int], lease_seconds: float) -> list[int]:
    """Extend the leases this worker still holds; returns the ids it still holds."""
    if not ids:
        return []
    with _session(engine) as s:
        held = list(s.scalars(update(Conversation).where(
            Conversation.id.in_(list(ids)), Conversation.lease_owner == worker_id,
            Conversation.status == "in_progress").values(
            lease_expires_at=utcnow() + timedelta(seconds=lease_seconds)).returning(Conversation.id)))
        s.commit()
        return held


def write_heartbeat(engine: Engine, row: dict, db_samples_ms: Sequence[float]) -> None:
    """Upsert this worker's heartbeat row and add its database timings to the hour's histogram."""
    with Session(bind=relaxed_bind(engine)) as s:
        pg = s.get_bind().dialect.name == "postgresql"
        stmt = (postgresql if pg else sqlite).insert(WorkerHeartbeat).values(**row)
        changes = {k: stmt.excluded[k] for k in row if k not in ("id", "started_at")}
        # A pushed acknowledgement may have landed meanwhile: a heartbeat never takes the version back.
        newer = WorkerHeartbeat.settings_version < stmt.excluded.settings_version
        changes["settings_version"] = case((newer, stmt.excluded.settings_version),
                                           else_=WorkerHeartbeat.settings_version)
        changes["settings_seen_at"] = case((newer, stmt.excluded.settings_seen_at),
                                           else_=WorkerHeartbeat.settings_seen_at)
        s.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=changes))
        if db_samples_ms:
            rollups.record_db_time(s, source="worker", samples_ms=db_samples_ms, at=row["last_seen_at"])
        s.commit()


def acknowledge_settings(conn: Connection, *, worker_id: str, version: int, seen_at: datetime) -> None:
    """Record on the worker's heartbeat row that it now obeys settings VERSION (one statement, on CONN)."""
    hb = WorkerHeartbeat
    conn.execute(update(hb).where(hb.id == worker_id, hb.settings_version < version).values(
        settings_version=version, settings_seen_at=seen_at, last_seen_at=utcnow()))


# On PostgreSQL the completion is one round trip: finish the conversation (only under our lease), store
# the message (its idempotency key refuses a second copy), and add it to both hourly rollups.
_COMPLETE_SQL = text("""
WITH upd AS (
    UPDATE agent_conversations SET status = 'completed', completed_at = :now, response_time_ms = :rt,
        prompt_tokens = :pt, completion_tokens = :ct, cost_usd = :cost, provider = :provider, error = NULL,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = :id AND lease_owner = :worker AND status = 'in_progress'
    RETURNING id, created_at, date_trunc('hour', created_at, 'UTC') AS hour, agent_instance_id, shop_id, agent_type
), msg AS (
    INSERT INTO agent_messages (conversation_id, role, content, created_at, prompt_tokens, completion_tokens,
                                latency_ms, idempotency_key, conversation_created_at)
    SELECT id, 'agent', :content, :now, :pt, :ct, :latency, :key, created_at FROM upd RETURNING conversation_id
), met AS (
    INSERT INTO agent_metrics (hour, agent_instance_id, shop_id, agent_type, created, completed, failed, opted_out,
                               response_ms_sum, prompt_tokens, completion_tokens, cost_usd)
    SELECT hour, agent_instance_id, shop_id, agent_type, 0, 1, 0, 0, :rt, :pt, :ct, :cost FROM upd
    ON CONFLICT (hour, agent_instance_id) DO UPDATE SET
        completed = agent_metrics.completed + 1, response_ms_sum = agent_metrics.response_ms_sum + EXCLUDED.response_ms_sum,
        prompt_tokens = agent_metrics.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = agent_metrics.completion_tokens + EXCLUDED.completion_tokens,
        cost_usd = agent_metrics.cost_usd + EXCLUDED.cost_usd
    RETURNING 1
), bkt AS (
    INSERT INTO agent_response_buckets (hour, agent_instance_id, bucket, shop_id, agent_type, count)
    SELECT hour, agent_instance_id, :bucket, shop_id, agent_type, 1 FROM upd
    ON CONFLICT (hour, agent_instance_id, bucket) DO UPDATE SET count = agent_response_buckets.count + 1
    RETURNING 1
)
SELECT (SELECT count(*) FROM upd)
""")


def _complete_in_one_statement(engine: Engine, conversation_id: int, worker_id: str, reply: Reply,
                               response_ms: int) -> Outcome:
    params = {"now": utcnow(), "rt": response_ms, "pt": reply.prompt_tokens, "ct": reply.completion_tokens,
              "cost": reply.cost_usd, "provider": reply.provider, "id": conversation_id, "worker": worker_id,
              "content": reply.text, "latency": int(reply.latency_ms), "key": f"conv:{conversation_id}:step:0",
              "bucket": rollups.bucket_of(response_ms)}
    try:
        with one_statement(hot_bind(engine)) as conn:
            finished = conn.execute(_COMPLETE_SQL, params).scalar_one()
    except IntegrityError:
        return Outcome(False, "already sent: this message's idempotency key exists")
    return Outcome(True) if finished else Outcome(False, "lease lost: another worker holds this conversation")


@dataclass(frozen=True)
class Completion:
    """One reply to store: what `complete` takes, as a value (several go in one statement)."""

    conversation_id: int
    reply: Reply
    response_ms: int


# Several completions in one round trip and one commit (PostgreSQL): the same steps as _COMPLETE_SQL, over an
# unnest() of the batch. The rollups are added per hour × instance (× bucket), in key order, so two workers'
# batches lock those rows in the same order and never deadlock; a conversation whose lease was lost is skipped.
_COMPLETE_MANY_SQL = text("""
WITH v AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:rts AS integer[]), CAST(:pts AS integer[]),
                         CAST(:cts AS integer[]), CAST(:costs AS numeric[]), CAST(:providers AS text[]),
                         CAST(:contents AS text[]), CAST(:latencies AS integer[]), CAST(:keys AS text[]),
                         CAST(:buckets AS integer[]))
        AS v(id, rt, pt, ct, cost, provider, content, latency, key, bucket)
), upd AS (
    UPDATE agent_conversations c SET status = 'completed', completed_at = :now, response_time_ms = v.rt,
        prompt_tokens = v.pt, completion_tokens = v.ct, cost_usd = v.cost, provider = v.provider, error = NULL,
        lease_owner = NULL, lease_expires_at = NULL
    FROM v WHERE c.id = v.id AND c.lease_owner = :worker AND c.status = 'in_progress'
    RETURNING c.id, c.created_at, date_trunc('hour', c.created_at, 'UTC') AS hour, c.agent_instance_id, c.shop_id,
        c.agent_type, v.rt, v.pt, v.ct, v.cost, v.content, v.latency, v.key, v.bucket
), msg AS (
    INSERT INTO agent_messages (conversation_id, role, content, created_at, prompt_tokens, completion_tokens,
                                latency_ms, idempotency_key, conversation_created_at)
    SELECT id, 'agent', content, :now, pt, ct, latency, key, created_at FROM upd ORDER BY id RETURNING conversation_id
), met AS (
    INSERT INTO agent_metrics (hour, agent_instance_id, shop_id, agent_type, created, completed, failed, opted_out,
                               response_ms_sum, prompt_tokens, completion_tokens, cost_usd)
    SELECT hour, agent_instance_id, shop_id, agent_type, 0, count(*), 0, 0, sum(rt), sum(pt), sum(ct), sum(cost)
    FROM upd GROUP BY hour, agent_instance_id, shop_id, agent_type ORDER BY hour, agent_instance_id
    ON CONFLICT (hour, agent_instance_id) DO UPDATE SET
        completed = agent_metrics.completed + EXCLUDED.completed,
        response_ms_sum = agent_metrics.response_ms_sum + EXCLUDED.response_ms_sum,
        prompt_tokens = agent_metrics.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = agent_metrics.completion_tokens + EXCLUDED.completion_tokens,
        cost_usd = agent_metrics.cost_usd + EXCLUDED.cost_usd
    RETURNING 1
), bkt AS (
    INSERT INTO agent_response_buckets (hour, agent_instance_id, bucket, shop_id, agent_type, count)
    SELECT hour, agent_instance_id, bucket, shop_id, agent_type, count(*) FROM upd
    GROUP BY hour, agent_instance_id, bucket, shop_id, agent_type ORDER BY hour, agent_instance_id, bucket
    ON CONFLICT (hour, agent_instance_id, bucket) DO UPDATE SET count = agent_response_buckets.count + EXCLUDED.count
    RETURNING 1
)
SELECT id FROM upd
""")


def complete_many(engine: Engine, *, worker_id: str, batch: Sequence[Completion]) -> dict[int, Outcome]:
    """Store several replies at once (one statement, one commit on PostgreSQL); each outcome as `complete` gives.

    Should any message of the batch exist already (its idempotency key), each is stored on its own instead, so
    the one refused does not hold back the others. Elsewhere than PostgreSQL: one `complete` each.
    """
    if engine.dialect.name != "postgresql" or len(batch) == 1:
        return {b.conversation_id: complete(engine, conversation_id=b.conversation_id, worker_id=worker_id,
                                            reply=b.reply, response_ms=b.response_ms) for b in batch}
    params = {"now": utcnow(), "worker": worker_id, "ids": [b.conversation_id for b in batch],
              "rts": [b.response_ms for b in batch], "pts": [b.reply.prompt_tokens for b in batch],
              "cts": [b.reply.completion_tokens for b in batch], "costs": [b.reply.cost_usd for b in batch],
              "providers": [b.reply.provider for b in batch], "contents": [b.reply.text for b in batch],
              "latencies": [int(b.reply.latency_ms) for b in batch],
              "keys": [f"conv:{b.conversation_id}:step:0" for b in batch],
              "buckets": [rollups.bucket_of(b.response_ms) for b in batch]}
    try:
        with one_statement(hot_bind(engine)) as conn:
            done = set(conn.execute(_COMPLETE_MANY_SQL, params).scalars())
    except IntegrityError:
        return {b.conversation_id: complete(engine, conversation_id=b.conversation_id, worker_id=worker_id,
                                            reply=b.reply, response_ms=b.response_ms) for b in batch}
    lost = Outcome(False, "lease lost: another worker holds this conversation")
    return {b.conversation_id: Outcome(True) if b.conversation_id in done else lost for b in batch}
