"""The worker's database steps. Each is one short transaction; completions check the lease."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import rollups
from core.db import write_bind
from core.llm import Reply
from core.models import AgentInstance, Conversation, Message, WorkerHeartbeat, utcnow
from core.queries.settings import ActivationState

# A conversation claimed this many times without finishing is failed instead of tried again.
MAX_CLAIMS = 5


def _session(engine: Engine) -> Session:
    return Session(bind=write_bind(engine), expire_on_commit=False)


def _scope_filters(state: ActivationState, percent_shops: Sequence[int]) -> list:
    c = Conversation
    filters = []
    if state.disabled_agent_types:
        filters.append(c.agent_type.not_in(state.disabled_agent_types))
    if state.mode == "limited":
        shops = set(state.allowed_shops) | (set(percent_shops) if state.shop_percent is not None else set())
        filters.append(c.shop_id.in_(sorted(shops)))
        if state.allowed_agent_types:
            filters.append(c.agent_type.in_(state.allowed_agent_types))
    return filters


def claim(engine: Engine, *, worker_id: str, limit: int, state: ActivationState, percent_shops: Sequence[int],
          lease_seconds: float) -> list[int]:
    """Take up to LIMIT due conversations in scope (pending, or whose lease expired) under a lease."""
    now = utcnow()
    c = Conversation
    due = or_(and_(c.status == "pending", or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now)),
              and_(c.status == "in_progress", c.lease_expires_at < now))
    active = select(AgentInstance.id).where(AgentInstance.id == c.agent_instance_id, AgentInstance.status == "active")
    query = (select(c.id).where(due, active.exists(), *_scope_filters(state, percent_shops))
             .order_by(c.created_at).limit(limit).with_for_update(skip_locked=True, of=c))
    with _session(engine) as s:
        ids = list(s.scalars(query))
        if ids:
            s.execute(update(c).where(c.id.in_(ids)).values(
                status="in_progress", lease_owner=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=now, attempts=c.attempts + 1, next_attempt_at=None))
        s.commit()
    return ids


def _owned(s: Session, conversation_id: int, worker_id: str) -> Conversation | None:
    return s.scalars(select(Conversation).where(
        Conversation.id == conversation_id, Conversation.lease_owner == worker_id,
        Conversation.status == "in_progress").with_for_update()).one_or_none()


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    reason: str = ""


def complete(engine: Engine, *, conversation_id: int, worker_id: str, reply: Reply, response_ms: int) -> Outcome:
    """Store the outgoing message and finish the conversation, unless the lease was lost meanwhile."""
    with _session(engine) as s:
        conv = _owned(s, conversation_id, worker_id)
        if conv is None:
            return Outcome(False, "lease lost: another worker holds this conversation")
        now = utcnow()
        s.add(Message(conversation_id=conv.id, role="agent", content=reply.text, created_at=now,
                      prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                      latency_ms=int(reply.latency_ms), idempotency_key=f"conv:{conv.id}:step:0"))
        conv.status, conv.completed_at, conv.response_time_ms = "completed", now, response_ms
        conv.prompt_tokens, conv.completion_tokens, conv.cost_usd = reply.prompt_tokens, reply.completion_tokens, reply.cost_usd
        conv.provider, conv.error, conv.lease_owner, conv.lease_expires_at = reply.provider, None, None, None
        try:
            s.flush()
        except IntegrityError:
            s.rollback()
            return Outcome(False, "already sent: this message's idempotency key exists")
        rollups.record_finished(s, conv)
        s.commit()
        return Outcome(True)


def finish_without_reply(engine: Engine, *, conversation_id: int, worker_id: str, status: str, error: str | None,
                         provider: str | None) -> Outcome:
    """Mark a held conversation failed (with the error) or opted_out; rejected if the lease was lost."""
    with _session(engine) as s:
        conv = _owned(s, conversation_id, worker_id)
        if conv is None:
            return Outcome(False, "lease lost")
        conv.status, conv.completed_at, conv.error, conv.provider = status, utcnow(), (error or None), provider
        conv.lease_owner = conv.lease_expires_at = None
        rollups.record_finished(s, conv)
        s.commit()
        return Outcome(True)


def release(engine: Engine, *, conversation_id: int, worker_id: str, retry_at: datetime | None,
            count_attempt: bool = False) -> Outcome:
    """Give a held conversation back (pending, due at RETRY_AT): breaker open, or the worker stopping."""
    with _session(engine) as s:
        conv = _owned(s, conversation_id, worker_id)
        if conv is None:
            return Outcome(False, "lease lost")
        conv.status, conv.lease_owner, conv.lease_expires_at, conv.next_attempt_at = "pending", None, None, retry_at
        conv.started_at = None
        if not count_attempt:
            conv.attempts = max(0, conv.attempts - 1)
        s.commit()
        return Outcome(True)


def renew_leases(engine: Engine, *, worker_id: str, ids: Sequence[int], lease_seconds: float) -> int:
    """Extend the leases this worker still holds; returns how many it still holds."""
    if not ids:
        return 0
    with _session(engine) as s:
        n = s.execute(update(Conversation).where(
            Conversation.id.in_(list(ids)), Conversation.lease_owner == worker_id,
            Conversation.status == "in_progress").values(
            lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))).rowcount
        s.commit()
        return n or 0


def write_heartbeat(engine: Engine, row: dict, db_samples_ms: Sequence[float]) -> None:
    """Upsert this worker's heartbeat row and add its database timings to the hour's histogram."""
    with _session(engine) as s:
        dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(WorkerHeartbeat).values(**row)
        s.execute(stmt.on_conflict_do_update(index_elements=["id"],
                                             set_={k: stmt.excluded[k] for k in row if k not in ("id", "started_at")}))
        if db_samples_ms:
            rollups.record_db_time(s, source="worker", samples_ms=db_samples_ms, at=row["last_seen_at"])
        s.commit()
