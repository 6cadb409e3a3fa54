"""worker memory baseline: RSS at start, so the console shows growth ("memory < 100 MB additional")

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_workers") as batch:
        batch.add_column(sa.Column("rss_start_mb", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("agent_workers") as batch:
        batch.drop_column("rss_start_mb")
