"""rollups: the response-time histogram of closed hours as one compact row per hour and type / shop / shop and type

agent_response_buckets is keyed by hour × instance × bucket: 915,279 rows for 1,000,000 conversations, so a
24-hour health query read ~30,000 rows at 1M and grew with the conversations. Closed hours now live in three
tables of one row per hour and agent type, per hour and shop, per hour, shop and type, each holding the whole
histogram (bucket → count); the fine table keeps only what is not folded yet. A partial index holds the
conversations still open, which Agent health counts per window. This migration folds a populated
database (both PostgreSQL and SQLite) in one pass, a day at a time. The daily histograms become one compact row
per day and type / shop the same way (30 days by shop were ~70,000 rows at 1M).

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-26 23:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.models.base

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

# Agent health counts a window's open conversations: without this it read every row of the window (33,000 a day
# at 1M) to find the few thousand still open; 0005 had dropped the (status, created_at) index it used.
OPEN_STATUSES = "status IN ('pending', 'in_progress', 'waiting_response')"
TABLES = {
    "agent_response_hourly_by_type": [sa.Column("agent_type", sa.String(length=40), nullable=False)],
    "agent_response_hourly_by_shop": [sa.Column("shop_id", sa.Integer(), nullable=False)],
    "agent_response_hourly_by_shop_type": [sa.Column("shop_id", sa.Integer(), nullable=False),
                                           sa.Column("agent_type", sa.String(length=40), nullable=False)],
}

DAILY = {
    "agent_response_daily_by_type": lambda: sa.Column("agent_type", sa.String(length=40), nullable=False),
    "agent_response_daily_by_shop": lambda: sa.Column("shop_id", sa.Integer(), nullable=False),
}


def upgrade() -> None:
    for name, keys in TABLES.items():
        op.create_table(
            name, sa.Column("hour", core.models.base.UTCDateTime(timezone=True), nullable=False), *keys,
            sa.Column("counts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
            sa.PrimaryKeyConstraint("hour", *[k.name for k in keys], name=op.f(f"pk_{name}")))
    op.create_index("ix_agent_response_hourly_by_shop_type_shop_hour", "agent_response_hourly_by_shop_type",
                    ["shop_id", "hour"])
    op.create_index("ix_agent_conversations_open", "agent_conversations", ["created_at"],
                    postgresql_where=sa.text(OPEN_STATUSES), sqlite_where=sa.text(OPEN_STATUSES),
                    postgresql_include=["status", "shop_id"])
    for name, key in DAILY.items():  # derived from the hourly rows: rebuilt below, not converted
        op.drop_table(name)
        op.create_table(
            name, sa.Column("day", core.models.base.UTCDateTime(timezone=True), nullable=False), key(),
            sa.Column("counts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
            sa.PrimaryKeyConstraint("day", key().name, name=op.f(f"pk_{name}")))
    # The library's own fold and daily refresh (the fine table's hour, shop_id, agent_type, bucket and count in,
    # the tables made above out).
    from core.rollups_daily import refresh_daily

    refresh_daily(op.get_bind(), days=None, schema_0012=False)  # what 0012 adds does not exist yet


def downgrade() -> None:
    for name, key in DAILY.items():  # refilled by the next `rollups rebuild` or probe cycle
        op.drop_table(name)
        op.create_table(
            name, sa.Column("day", core.models.base.UTCDateTime(timezone=True), nullable=False), key(),
            sa.Column("bucket", sa.Integer(), nullable=False), sa.Column("count", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("day", key().name, "bucket", name=op.f(f"pk_{name}")))
    op.drop_index("ix_agent_conversations_open", table_name="agent_conversations")
    # The folded hours lose their per-instance rows: `python -m core rollups rebuild` recomputes them from raw rows.
    op.drop_index("ix_agent_response_hourly_by_shop_type_shop_hour", table_name="agent_response_hourly_by_shop_type")
    for name in reversed(list(TABLES)):
        op.drop_table(name)
