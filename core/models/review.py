"""Conversation review: the state of each reviewed conversation, the reviews with their history, queues filled by
rules, leased queue items, the judge's pre-scores and break-glass reveals of client data."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL, BigInteger, Float, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint, event, text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, utcnow
from core.models.conversations import Message
from core.models.partitioning import is_partition

REVIEW_STATES = ("unreviewed", "reviewed", "escalated", "resolved")
BigId = BigInteger().with_variant(Integer, "sqlite")


def conversation_fk() -> ForeignKeyConstraint:
    """conversation_id → agent_conversations.id, on SQLite only: a partitioned table (PostgreSQL) has no key on id
    alone to refer to. There, retention deletes these rows with their month (core.retention); nothing else deletes
    conversations but the checklist's cleanup of the one it made."""
    return ForeignKeyConstraint(["conversation_id"], ["agent_conversations.id"], ondelete="CASCADE").ddl_if(
        dialect="sqlite")
# Open queue items, in the order "next item" hands them out: the claim reads only this.
OPEN_ITEM = "done_at IS NULL"
HELD_ITEM = "done_at IS NULL AND lease_owner IS NOT NULL"  # what a reviewer holds: found without a scan


class ReviewState(Base):
    """One row per conversation somebody (or the judge) looked at; no row means unreviewed."""

    __tablename__ = "agent_review_states"
    __table_args__ = (Index("ix_agent_review_states_type_state", "agent_type", "state"),
                      Index("ix_agent_review_states_shop", "shop_id"), conversation_fk())
    conversation_id: Mapped[int] = mapped_column(
        BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(Integer)  # copied from the conversation: scope without a join
    agent_type: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="unreviewed")
    reviewer: Mapped[str | None] = mapped_column(String(100))
    reviewed_at: Mapped[datetime | None]
    rating: Mapped[int | None]
    # ",wrong_info,tone," so one LIKE '%,tone,%' filters by a flag the same way on both databases.
    flags: Mapped[str] = mapped_column(String(200), default="")
    reviews: Mapped[int] = mapped_column(default=0)
    judge_rating: Mapped[float | None] = mapped_column(Float)
    judge_flags: Mapped[str] = mapped_column(String(200), default="")
    judge_provider: Mapped[str | None] = mapped_column(String(40))
    judged_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewRecord(Base):
    """Every review ever submitted; an edit is a new record pointing at the one it replaces."""

    __tablename__ = "agent_review_records"
    __table_args__ = (Index("ix_agent_review_records_conversation", "conversation_id", "created_at"),
                      Index("ix_agent_review_records_reviewer", "reviewer", "created_at"), conversation_fk())
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigId)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("agent_review_queues.id", ondelete="SET NULL"))
    reviewer: Mapped[str] = mapped_column(String(100))
    rating: Mapped[int]
    flags: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    replaces_id: Mapped[int | None] = mapped_column(BigId)
    current: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewQueue(Base):
    """A named queue: a filter, sampling rates per agent type, how many reviews each item needs, an order."""

    __tablename__ = "agent_review_queues"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reviews_per_item: Mapped[int] = mapped_column(default=1)
    order_by: Mapped[str] = mapped_column(String(16), default="newest")  # newest | judge (worst judged first)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewQueueItem(Base):
    """A conversation in a queue, at most once; a reviewer holds it under a lease while reading it."""

    __tablename__ = "agent_review_queue_items"
    __table_args__ = (
        UniqueConstraint("queue_id", "conversation_id"),
        Index("ix_agent_review_queue_items_open", "queue_id", "priority", "id",
              postgresql_where=text(OPEN_ITEM), sqlite_where=text(OPEN_ITEM)),
        Index("ix_agent_review_queue_items_conversation", "conversation_id"),
        Index("ix_agent_review_queue_items_holder", "lease_owner", "queue_id", postgresql_where=text(HELD_ITEM),
              sqlite_where=text(HELD_ITEM)),
        conversation_fk(),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("agent_review_queues.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigId)
    shop_id: Mapped[int] = mapped_column(Integer)
    agent_type: Mapped[str] = mapped_column(String(40))
    priority: Mapped[float] = mapped_column(Float, default=0.0)  # lower first: newest or worst judged, by the queue's order
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    reviews_done: Mapped[int] = mapped_column(default=0)
    done_at: Mapped[datetime | None]


class JudgeScore(Base):
    """The model's (or the offline heuristic's) pre-score of a conversation on the review schema."""

    __tablename__ = "agent_judge_scores"
    __table_args__ = (conversation_fk(),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        BigId, unique=True)
    rating: Mapped[float] = mapped_column(Float)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    rationale: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RevealGrant(Base):
    """A break-glass reveal of client data: who, for which conversation, why, until when."""

    __tablename__ = "agent_pii_reveals"
    __table_args__ = (Index("ix_agent_pii_reveals_user", "username", "expires_at"), conversation_fk())
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    conversation_id: Mapped[int] = mapped_column(BigId)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


# Full-text search over message content, kept current as messages are written.
# PostgreSQL: a GIN index on the tsvector of the content (core.models.conversations.FTS_EXPRESSION).
# SQLite: an FTS5 table over the messages (external content), kept current by triggers. It is not a model: it is
# created with agent_messages (migration 0006, and create_all after a restore) and read through text() only.
FTS_TABLE = "agent_messages_fts"
SQLITE_FTS_DDL = (
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(content, content='agent_messages', content_rowid='id')",
    (f"CREATE TRIGGER IF NOT EXISTS agent_messages_fts_ai AFTER INSERT ON agent_messages BEGIN "
     f"INSERT INTO {FTS_TABLE}(rowid, content) VALUES (new.id, new.content); END"),
    (f"CREATE TRIGGER IF NOT EXISTS agent_messages_fts_ad AFTER DELETE ON agent_messages BEGIN "
     f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, content) VALUES ('delete', old.id, old.content); END"),
    (f"CREATE TRIGGER IF NOT EXISTS agent_messages_fts_au AFTER UPDATE OF content ON agent_messages BEGIN "
     f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, content) VALUES ('delete', old.id, old.content); "
     f"INSERT INTO {FTS_TABLE}(rowid, content) VALUES (new.id, new.content); END"),
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
)
for _statement in SQLITE_FTS_DDL:
    event.listen(Message.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))


def is_fts_shadow(name: str | None) -> bool:
    """True for the SQLite FTS5 table and its shadow tables (no model; autogenerate leaves them alone)."""
    return bool(name) and name.startswith(FTS_TABLE)


def include_name(name: str | None, type_: str, _parent_names: dict) -> bool:
    """Alembic's filter: compare everything but the FTS5 tables and PostgreSQL's month partitions."""
    return not (type_ == "table" and (is_fts_shadow(name) or is_partition(name)))
