"""rollups: the response-time histogram of closed hours as one compact row per hour and type / shop / shop and type

agent_response_buckets is keyed by hour × instance × bucket: 915,279 rows for 1,000,000 conversations, so a
24-hour health query read ~30,000 rows at 1M and grew with the conversations. Closed hours now live in three
tables of one row per hour and agent type, per hour and shop, per hour, shop and type, each holding the whole
histogram (bucket → count); the fine table keeps only what is not folded yet. This migration folds a populated
database (both PostgreSQL and SQLite) in one pass, a day at a time.

Revision ID: 0010
Revises: 0005
Create Date: 2026-11-26 23:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.models.base

revision = "0010"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = {
    "agent_response_hourly_by_type": [sa.Column("agent_type", sa.String(length=40), nullable=False)],
    "agent_response_hourly_by_shop": [sa.Column("shop_id", sa.Integer(), nullable=False)],
    "agent_response_hourly_by_shop_type": [sa.Column("shop_id", sa.Integer(), nullable=False),
                                           sa.Column("agent_type", sa.String(length=40), nullable=False)],
}


def upgrade() -> None:
    for name, keys in TABLES.items():
        op.create_table(
            name, sa.Column("hour", core.models.base.UTCDateTime(timezone=True), nullable=False), *keys,
            sa.Column("counts", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
            sa.PrimaryKeyConstraint("hour", *[k.name for k in keys], name=op.f(f"pk_{name}")))
    op.create_index("ix_agent_response_hourly_by_shop_type_shop_hour", "agent_response_hourly_by_shop_type",
                    ["shop_id", "hour"])
    # The library's own fold (it reads only hour, shop_id, agent_type, bucket and count of the fine table).
    from core.rollups_compact import fold_closed_hours

    fold_closed_hours(op.get_bind())


def downgrade() -> None:
    # The folded hours lose their per-instance rows: `python -m core rollups rebuild` recomputes them from raw rows.
    op.drop_index("ix_agent_response_hourly_by_shop_type_shop_hour", table_name="agent_response_hourly_by_shop_type")
    for name in reversed(list(TABLES)):
        op.drop_table(name)
