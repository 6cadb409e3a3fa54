"""conversation review: review states and records, queues and leased items, judge scores, PII reveals, full-text
search over messages (PostgreSQL: GIN on to_tsvector('simple', content); SQLite: FTS5 kept by triggers)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 12:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.models.base
from core.models.review import FTS_TABLE, SQLITE_FTS_DDL

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN_ITEM = "done_at IS NULL"
HELD_ITEM = "done_at IS NULL AND lease_owner IS NOT NULL"
OUTCOMES = "status IN ('failed', 'opted_out')"
HAS_ERROR = "error IS NOT NULL"
FTS_EXPRESSION = "to_tsvector('simple', content)"


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, core.models.base.UTCDateTime(timezone=True), nullable=nullable)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _conversation_fk(name: str = "conversation_id", **kw: object) -> sa.Column:
    return sa.Column(name, _id(), sa.ForeignKey("agent_conversations.id", ondelete="CASCADE"), nullable=False, **kw)


def upgrade() -> None:
    _states_and_records()
    _queues()
    op.create_table(
        "agent_judge_scores", sa.Column("id", _id(), primary_key=True), _conversation_fk(unique=True),
        sa.Column("rating", sa.Float(), nullable=False), sa.Column("flags", _json(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False), sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("model", sa.String(80), nullable=False), _time("created_at"))
    op.create_table(
        "agent_pii_reveals", sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(100), nullable=False), _conversation_fk(),
        sa.Column("reason", sa.Text(), nullable=False), _time("created_at"), _time("expires_at"))
    op.create_index("ix_agent_pii_reveals_user", "agent_pii_reveals", ["username", "expires_at"])
    _full_text_search()
    op.create_index("ix_agent_audit_log_target", "agent_audit_log", ["target", "seq"])
    op.create_index("ix_agent_conversations_outcome_created", "agent_conversations", ["status", "created_at"],
                    postgresql_where=sa.text(OUTCOMES), sqlite_where=sa.text(OUTCOMES))
    op.create_index("ix_agent_conversations_error_created", "agent_conversations", ["created_at"],
                    postgresql_where=sa.text(HAS_ERROR), sqlite_where=sa.text(HAS_ERROR))


def _states_and_records() -> None:
    op.create_table(
        "agent_review_states", _conversation_fk(primary_key=True),
        sa.Column("shop_id", sa.Integer(), nullable=False), sa.Column("agent_type", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False), sa.Column("reviewer", sa.String(100)),
        _time("reviewed_at", True), sa.Column("rating", sa.Integer()), sa.Column("flags", sa.String(200), nullable=False),
        sa.Column("reviews", sa.Integer(), nullable=False), sa.Column("judge_rating", sa.Float()),
        sa.Column("judge_flags", sa.String(200), nullable=False), sa.Column("judge_provider", sa.String(40)),
        _time("judged_at", True), _time("updated_at"))
    op.create_index("ix_agent_review_states_type_state", "agent_review_states", ["agent_type", "state"])
    op.create_index("ix_agent_review_states_shop", "agent_review_states", ["shop_id"])
    op.create_table(
        "agent_review_queues", sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(60), nullable=False, unique=True), sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rules", _json(), nullable=False), sa.Column("reviews_per_item", sa.Integer(), nullable=False),
        sa.Column("order_by", sa.String(16), nullable=False), _time("created_at"))
    op.create_table(
        "agent_review_records", sa.Column("id", _id(), primary_key=True), _conversation_fk(),
        sa.Column("queue_id", sa.Integer(), sa.ForeignKey("agent_review_queues.id", ondelete="SET NULL")),
        sa.Column("reviewer", sa.String(100), nullable=False), sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("flags", _json(), nullable=False), sa.Column("note", sa.Text(), nullable=False),
        sa.Column("replaces_id", _id()), sa.Column("current", sa.Boolean(), nullable=False), _time("created_at"))
    op.create_index("ix_agent_review_records_conversation", "agent_review_records", ["conversation_id", "created_at"])
    op.create_index("ix_agent_review_records_reviewer", "agent_review_records", ["reviewer", "created_at"])


def _queues() -> None:
    op.create_table(
        "agent_review_queue_items", sa.Column("id", _id(), primary_key=True),
        sa.Column("queue_id", sa.Integer(), sa.ForeignKey("agent_review_queues.id", ondelete="CASCADE"),
                  nullable=False),
        _conversation_fk(), sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("agent_type", sa.String(40), nullable=False), sa.Column("priority", sa.Float(), nullable=False),
        _time("added_at"), sa.Column("lease_owner", sa.String(100)), _time("lease_expires_at", True),
        sa.Column("reviews_done", sa.Integer(), nullable=False), _time("done_at", True),
        sa.UniqueConstraint("queue_id", "conversation_id"))
    op.create_index("ix_agent_review_queue_items_open", "agent_review_queue_items", ["queue_id", "priority", "id"],
                    postgresql_where=sa.text(OPEN_ITEM), sqlite_where=sa.text(OPEN_ITEM))
    op.create_index("ix_agent_review_queue_items_conversation", "agent_review_queue_items", ["conversation_id"])
    op.create_index("ix_agent_review_queue_items_holder", "agent_review_queue_items", ["lease_owner", "queue_id"],
                    postgresql_where=sa.text(HELD_ITEM), sqlite_where=sa.text(HELD_ITEM))


def _full_text_search() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_agent_messages_fts", "agent_messages", [sa.text(FTS_EXPRESSION)], postgresql_using="gin")
        return
    for statement in SQLITE_FTS_DDL:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("ix_agent_audit_log_target", table_name="agent_audit_log")
    op.drop_index("ix_agent_conversations_error_created", table_name="agent_conversations")
    op.drop_index("ix_agent_conversations_outcome_created", table_name="agent_conversations")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_agent_messages_fts", table_name="agent_messages")
    else:
        for trigger in ("agent_messages_fts_ai", "agent_messages_fts_ad", "agent_messages_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    for table in ("agent_pii_reveals", "agent_judge_scores", "agent_review_queue_items", "agent_review_records",
                  "agent_review_queues", "agent_review_states"):
        op.drop_table(table)
