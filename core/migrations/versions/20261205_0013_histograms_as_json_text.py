"""rollups: the stored response-time histograms become json instead of jsonb on PostgreSQL

Readers now add up a window's stored histograms from their text (string_agg of the rows, summed in one pass by
core.rollups_compact.sum_stored). jsonb has to rebuild that text on every read: a 30-day breakdown by shop spent
11.5 ms of its database time doing so for 1,160 daily rows at 1M, against 1.9 ms for json, which keeps the text as
written. Folds still merge histograms in the database (json_each_text works on both types). SQLite stores JSON as
text already: nothing changes there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 19:30:00
"""
from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = ("agent_response_hourly_by_type", "agent_response_hourly_by_shop", "agent_response_hourly_by_shop_type",
          "agent_response_daily_by_type", "agent_response_daily_by_shop", "agent_response_daily_by_shop_type")


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:  # rows follow hours × types × shops: a rewrite of each table takes seconds at 10M
        op.execute(f"ALTER TABLE {table} ALTER COLUMN counts TYPE {to} USING counts::{to}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
