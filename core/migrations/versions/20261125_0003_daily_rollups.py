"""daily rollups: whole days per shop and type, and histograms per type and per shop, for long windows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.models.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    day = lambda: sa.Column("day", core.models.base.UTCDateTime(timezone=True), nullable=False)  # noqa: E731
    op.create_table(
        "agent_metrics_daily", day(), sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("agent_type", sa.String(length=40), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in
          ("created", "completed", "failed", "opted_out", "prompt_tokens", "completion_tokens")],
        sa.Column("cost_usd", sa.Numeric(precision=14, scale=6), nullable=False),
        sa.PrimaryKeyConstraint("day", "shop_id", "agent_type", name=op.f("pk_agent_metrics_daily")))
    op.create_table(
        "agent_response_daily_by_type", day(), sa.Column("agent_type", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False), sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "agent_type", "bucket", name=op.f("pk_agent_response_daily_by_type")))
    op.create_table(
        "agent_response_daily_by_shop", day(), sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False), sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "shop_id", "bucket", name=op.f("pk_agent_response_daily_by_shop")))


def downgrade() -> None:
    for table in ("agent_response_daily_by_shop", "agent_response_daily_by_type", "agent_metrics_daily"):
        op.drop_table(table)
