"""Review queues: filled by rules (a filter plus a stable sample per agent type), never twice per conversation;
"next item" leases one item to one reviewer, so reviewers working at once never get the same conversation."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, false, func, literal, literal_column, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from core import audit
from core.auth import Actor, Permission
from core.config import get_settings
from core.errors import NotFound, UserInputError
from core.models import Conversation, Message, ReviewQueue, ReviewQueueItem, ReviewRecord, utcnow
from core.models.conversations import FTS_EXPRESSION
from core.models.review import FTS_TABLE
from core.queries.review_stats import held_item
from core.queries.scope import shop_filter
from core.services.guard import require
from core.uow import UnitOfWork

UNFINISHED = ("pending", "in_progress")
UNJUDGED = 99.0  # priority of an item the judge has not scored yet, in a queue ordered by judge score
# A stable pseudo-random bucket 0..9999 per conversation id (Knuth's multiplicative hash): the same on both
# databases, so a sample never changes between fills and each day's conversations are sampled alike.
SAMPLE_BUCKET = "((agent_conversations.id * 2654435761) % 10000)"


def default_queues() -> list[dict[str, Any]]:
    """The queues every deployment starts with (the issue's defaults), their numbers from config."""
    pct = get_settings().review_sample_percent
    return [
        {"name": "failed", "description": "Every failed conversation", "rules": {"status": ["failed"]}},
        {"name": "opt-outs", "description": "Every opt-out", "rules": {"status": ["opted_out"]}},
        {"name": "complaints", "description": "Client messages with complaint keywords", "rules": {"keywords": True}},
        {"name": "sample", "description": f"A stable {pct:g} % sample per agent type per day",
         "rules": {"sample_percent": {"*": pct}}, "order_by": "judge"},
    ]


def ensure_default_queues(uow: UnitOfWork) -> None:
    """Create the default queues that do not exist yet (inside the caller's transaction)."""
    have = set(uow.session.scalars(select(ReviewQueue.name)))
    for spec in default_queues():
        if spec["name"] not in have:
            uow.session.add(ReviewQueue(name=spec["name"], description=spec["description"], rules=spec["rules"],
                                        reviews_per_item=1, order_by=spec.get("order_by", "newest")))
    uow.session.flush()


def fill_queues(*, actor: Actor, uow: UnitOfWork, now: datetime | None = None,
                days: int | None = None) -> dict[str, int]:
    """Add finished conversations of the last DAYS (default REVIEW_FILL_DAYS) that match each queue's rules (within
    ACTOR's shops); returns how many each queue gained. An item already queued is never added again."""
    if days is not None and days < 1:
        raise UserInputError(f"The number of days to look back must be at least 1 (got {days}).")
    now = now or utcnow()
    with uow:
        require(uow, actor, Permission.REVIEW_CONVERSATIONS, action="review.fill", target="review queues")
        ensure_default_queues(uow)
        since = now - timedelta(days=days or get_settings().review_fill_days)
        added = {q.name: _fill_one(uow, actor, q, since, now) for q in uow.session.scalars(select(ReviewQueue))}
        uow.session.execute(update(ReviewQueueItem).where(ReviewQueueItem.done_at.is_(None),
                                                          ReviewQueueItem.lease_expires_at < now)
                            .values(lease_owner=None, lease_expires_at=None))
        if any(added.values()):
            audit.append(uow.session, actor=actor, action="review.fill", target="review queues", after=added)
        uow.commit()
        return added


def _fill_one(uow: UnitOfWork, actor: Actor, queue: ReviewQueue, since: datetime, now: datetime) -> int:
    c, i = Conversation, ReviewQueueItem
    dialect = uow.session.get_bind().dialect.name
    priority = literal(UNJUDGED) if queue.order_by == "judge" else -c.id
    at = literal(now, type_=i.__table__.c.added_at.type)
    rows = (select(literal(queue.id), c.id, c.shop_id, c.agent_type, priority, at, literal(0))
            .where(c.created_at >= since, c.status.not_in(UNFINISHED), *shop_filter(actor, c.shop_id),
                   *rule_conditions(queue.rules or {}, dialect),
                   ~exists().where(i.queue_id == queue.id, i.conversation_id == c.id)))
    cols = ["queue_id", "conversation_id", "shop_id", "agent_type", "priority", "added_at", "reviews_done"]
    ins = (postgresql.insert(i) if dialect == "postgresql" else sqlite.insert(i)).from_select(cols, rows)
    return int(uow.session.execute(ins.on_conflict_do_nothing()).rowcount or 0)


def rule_conditions(rules: dict[str, Any], dialect: str) -> list[ColumnElement]:
    """A queue's rules as conditions on Conversation: statuses, agent types, complaint keywords, sample rates."""
    c, conds = Conversation, []
    if rules.get("status"):
        conds.append(c.status.in_(list(rules["status"])))
    if rules.get("agent_types"):
        conds.append(c.agent_type.in_(list(rules["agent_types"])))
    if rules.get("keywords"):
        conds.append(c.id.in_(_complaints(dialect)))
    if rules.get("sample_percent"):
        conds.append(_sample(rules["sample_percent"]))
    return conds


def _sample(rates: dict[str, float]) -> ColumnElement:
    """Per agent type (key "*": every other type): the conversations whose stable bucket falls under the rate."""
    bucket = literal_column(SAMPLE_BUCKET)
    named = {t: p for t, p in rates.items() if t != "*"}
    parts = [and_(Conversation.agent_type == t, bucket < int(p * 100)) for t, p in named.items()]
    if "*" in rates:
        parts.append(and_(Conversation.agent_type.not_in(list(named)) if named else true(),
                          bucket < int(rates["*"] * 100)))
    return or_(*parts) if parts else false()


def _complaints(dialect: str) -> Select:
    """Ids of conversations where a client wrote one of the complaint keywords (through the full-text index)."""
    words = get_settings().complaint_keywords()
    m = Message
    if dialect == "postgresql":
        query = " || ".join(f"phraseto_tsquery('simple', :kw{n})" for n in range(len(words)))
        match = literal_column(FTS_EXPRESSION).op("@@")(
            text(f"({query})").bindparams(**{f"kw{n}": w for n, w in enumerate(words)}))
        return select(m.conversation_id).where(m.role == "client", match)
    fts = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
    ids = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :kw").bindparams(kw=fts)
    return select(m.conversation_id).where(m.role == "client", m.id.in_(ids.columns(literal_column("rowid"))))


def get_queue_or_raise(uow: UnitOfWork, name: str) -> ReviewQueue:
    """The queue called NAME; an unknown name is one sentence listing the queues."""
    queue = uow.session.scalars(select(ReviewQueue).where(ReviewQueue.name == name)).one_or_none()
    if queue is None:
        names = ", ".join(uow.session.scalars(select(ReviewQueue.name).order_by(ReviewQueue.name))) or "none yet"
        raise UserInputError(f"No review queue named {name!r} (queues: {names}; `python -m core review fill` "
                             "creates the default ones).")
    return queue


def next_item(*, actor: Actor, queue: str, uow: UnitOfWork, now: datetime | None = None) -> dict[str, Any] | None:
    """Lease the next item of QUEUE to ACTOR (or return the one they already hold); None when the queue is empty.

    One statement claims it: UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING on PostgreSQL, and
    the same UPDATE under SQLite's write lock, so two reviewers asking at once never get the same item. A lease is
    working state, like the worker's claims: it is not audited (the review that ends it is), which also keeps ten
    reviewers from queueing on the audit chain's head."""
    now = now or utcnow()
    with uow:
        require(uow, actor, Permission.REVIEW_CONVERSATIONS, action="review.next", target=f"queue {queue}")
        q = get_queue_or_raise(uow, queue)
        if uow.session.get_bind().dialect.name == "postgresql":
            # A lease lost in a crash only returns the item to its queue: no need to wait for the WAL flush.
            uow.session.execute(text("SET LOCAL synchronous_commit = off"))
        held = held_item(uow.session, actor=actor, queue=queue, now=now)
        row = None if held else uow.session.execute(
            claim_statement(actor, q.id, now, uow.session.get_bind().dialect.name)).first()
        uow.commit()
    if held or row is None:
        return held
    return {"item_id": row[0], "conversation_id": row[1], "queue": queue, "lease_expires_at": row[2]}


def claim_statement(actor: Actor, queue_id: int, now: datetime, dialect: str) -> Any:
    """The lease as one UPDATE … RETURNING (also what the benchmark times)."""
    i, r = ReviewQueueItem, ReviewRecord
    mine = exists().where(r.conversation_id == i.conversation_id, r.reviewer == actor.username, r.current)
    candidate = (select(i.id).where(i.queue_id == queue_id, text("done_at IS NULL"),
                                    or_(i.lease_expires_at.is_(None), i.lease_expires_at <= now),
                                    *shop_filter(actor, i.shop_id), ~mine)
                 .order_by(i.priority, i.id).limit(1))
    if dialect == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    expires = now + timedelta(seconds=get_settings().review_lease_seconds)
    return (update(i).where(i.id == candidate.scalar_subquery())
            .values(lease_owner=actor.username, lease_expires_at=expires)
            .returning(i.id, i.conversation_id, i.lease_expires_at))


def release_item(*, actor: Actor, item_id: int, uow: UnitOfWork) -> None:
    """Give a held item back to its queue (skip it) without reviewing it: to the back of the queue, so that the
    next item is another one."""
    with uow:
        require(uow, actor, Permission.REVIEW_CONVERSATIONS, action="review.release", target=f"item {item_id}")
        item = uow.session.get(ReviewQueueItem, item_id, with_for_update=True)
        if item is None or item.lease_owner != actor.username:
            raise NotFound(f"You hold no review item with id {item_id}.")
        i = ReviewQueueItem
        last = uow.session.scalar(select(func.max(i.priority)).where(i.queue_id == item.queue_id,
                                                                     text("done_at IS NULL")))
        before = item.priority
        item.lease_owner, item.lease_expires_at = None, None
        item.priority = (item.priority if last is None else last) + 1  # after every open item, itself included
        # The lease alone is not audited (next_item), but the new place in a queue every reviewer shares outlives it.
        queue = uow.session.get(ReviewQueue, item.queue_id)
        audit.append(uow.session, actor=actor, action="review.release", target=f"item {item_id}",
                     before={"priority": before}, after={"priority": item.priority, "queue": queue.name,
                                                         "conversation": item.conversation_id})
        uow.commit()


def set_queue_options(*, actor: Actor, name: str, uow: UnitOfWork, reviews_per_item: int | None = None,
                      order_by: str | None = None) -> dict[str, Any]:
    """How many people review each item of queue NAME (agreement needs two), and its order (newest | judge)."""
    if reviews_per_item is not None and not 1 <= reviews_per_item <= 5:
        raise UserInputError("Reviews per item must be between 1 and 5.")
    if order_by not in (None, "newest", "judge"):
        raise UserInputError(f"A queue is ordered by newest or judge, not {order_by!r}.")
    with uow:
        # Queue rules are configuration, like alert rules: engineers and admins set them.
        require(uow, actor, Permission.CHECKLIST, action="review.queue", target=f"queue {name}")
        ensure_default_queues(uow)
        q = get_queue_or_raise(uow, name)
        before = {"reviews_per_item": q.reviews_per_item, "order_by": q.order_by}
        q.reviews_per_item = reviews_per_item or q.reviews_per_item
        q.order_by = order_by or q.order_by
        after = {"reviews_per_item": q.reviews_per_item, "order_by": q.order_by}
        if after != before:
            audit.append(uow.session, actor=actor, action="review.queue", target=f"queue {name}", before=before,
                         after=after)
            uow.commit()
        return {"queue": name, **after}
