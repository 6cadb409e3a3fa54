"""Conversations the agents hold and the messages in them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger, ForeignKey, ForeignKeyConstraint, Index, Integer, Numeric, String, Text, UniqueConstraint, select, text,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, utcnow
from core.models.partitioning import add_default_partition, partition_by

CHANNELS = ("sms", "email")
# Open work is what a worker may claim: pending, or in progress under a lease that may run out.
CLAIMABLE = "status IN ('pending', 'in_progress')"
# When an open conversation is due: its lease's end while held, its retry time when deferred, else its creation.
DUE_AT = "coalesce(lease_expires_at, next_attempt_at, created_at)"
# Conversations still open, counted by Agent health per window: a few thousand rows however long the history.
OPEN_STATUSES = "status IN ('pending', 'in_progress', 'waiting_response')"
# Full-text search on PostgreSQL: a GIN index on this expression, which queries repeat word for word so the planner
# uses it; it is current as soon as a message is written (SQLite: FTS5, see core.models.review).
FTS_EXPRESSION = "to_tsvector('simple', content)"
# Review filters on rare outcomes read small partial indexes, not the whole history (migration 0006). A row enters
# them once, when it fails or opts out, so the worker's claims and completions stay as cheap as before.
OUTCOMES = "status IN ('failed', 'opted_out')"
HAS_ERROR = "error IS NOT NULL"


class Conversation(Base):
    __tablename__ = "agent_conversations"
    __table_args__ = (
        Index("ix_agent_conversations_shop_created", "shop_id", "created_at"),
        Index("ix_agent_conversations_instance_created", "agent_instance_id", "created_at"),
        Index("ix_agent_conversations_created", "created_at"),
        # The claim reads only this: open work in due order, however many finished rows the table holds.
        # Held rows sit at their lease's end, after everything due, so a claim never steps over them.
        Index("ix_agent_conversations_due", text(DUE_AT), postgresql_where=text(CLAIMABLE),
              sqlite_where=text(CLAIMABLE)),
        # Agent health counts the open conversations of a window from this (the status already decides the claim
        # index above, so it costs the worker's updates nothing more). Status first: a day's window counts only
        # its queue (pending, in progress) and takes the rest from the rollups (migration 0016).
        Index("ix_agent_conversations_open", "status", "created_at", postgresql_where=text(OPEN_STATUSES),
              sqlite_where=text(OPEN_STATUSES), postgresql_include=["shop_id"]),
        Index("ix_agent_conversations_outcome_created", "status", "created_at", postgresql_where=text(OUTCOMES),
              sqlite_where=text(OUTCOMES)),
        Index("ix_agent_conversations_error_created", "created_at", postgresql_where=text(HAS_ERROR),
              sqlite_where=text(HAS_ERROR)),
        # PostgreSQL: one partition per month of created_at (core.models.partitioning). The fillfactor and vacuum
        # settings of migration 0005 now go on each month's partition (core.partitions), as a parent takes none.
        partition_by("agent_conversations"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    agent_instance_id: Mapped[int] = mapped_column(ForeignKey("agent_instances.id", ondelete="CASCADE"))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    agent_type: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    response_time_ms: Mapped[int | None]
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(12, 6), default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(40))
    # The claim: which worker holds it, until when, and when a deferred one may be tried again.
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "agent_messages"
    __table_args__ = (
        Index("ix_agent_messages_conversation", "conversation_id", "created_at"),
        Index("ix_agent_messages_fts", text(FTS_EXPRESSION), postgresql_using="gin").ddl_if(dialect="postgresql"),
        # SQLite as before; PostgreSQL: the month of the conversation is part of every key, so a message is in the
        # partition of its conversation's month and the pair drops together.
        ForeignKeyConstraint(["conversation_id"], ["agent_conversations.id"], ondelete="CASCADE").ddl_if(
            dialect="sqlite"),
        ForeignKeyConstraint(["conversation_id", "conversation_created_at"],
                             ["agent_conversations.id", "agent_conversations.created_at"],
                             ondelete="CASCADE").ddl_if(dialect="postgresql"),
        # One outgoing message per key: a second worker finishing the same step cannot send it again. The key names
        # its conversation, so adding the conversation's month (PostgreSQL) changes nothing it refuses.
        UniqueConstraint("idempotency_key", name="uq_agent_messages_idempotency_key").ddl_if(dialect="sqlite"),
        UniqueConstraint("idempotency_key", "conversation_created_at",
                         name="uq_agent_messages_idempotency_key_month").ddl_if(dialect="postgresql"),
        partition_by("agent_messages"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    role: Mapped[str] = mapped_column(String(16))  # system | agent | client
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    latency_ms: Mapped[int | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    # The conversation's created_at, copied: the partition key (PostgreSQL). Writers that know it pass it; any
    # other insert reads it from the conversation.
    conversation_created_at: Mapped[datetime] = mapped_column(default=lambda ctx: conversation_created(ctx))


def conversation_created(context: DefaultExecutionContext) -> datetime:
    """The created_at of the conversation a message being inserted belongs to (the column's default)."""
    conversation_id = context.get_current_parameters()["conversation_id"]
    return context.connection.execute(
        select(Conversation.created_at).where(Conversation.id == conversation_id)).scalar_one()


add_default_partition(Conversation.__table__)
add_default_partition(Message.__table__)
