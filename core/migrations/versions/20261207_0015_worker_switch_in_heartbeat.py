"""workers report their AGENT_SYSTEM_ENABLED in each heartbeat

The switch a person sees is the stored mode and the environment of the process that reads it (the console, the
CLI). A worker started with AGENT_SYSTEM_ENABLED=false starts nothing whatever is stored, and nothing said so: the
console showed RUNNING and `conversations enqueue` gave no warning. Rows written before this revision count as on.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 16:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_workers") as batch:
        batch.add_column(sa.Column("env_enabled", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("agent_workers") as batch:
        batch.drop_column("env_enabled")
