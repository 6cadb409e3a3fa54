"""worker: drop agent_workers.claiming (written, never read)

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-26 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agent_workers") as batch:
        batch.drop_column("claiming")


def downgrade() -> None:
    with op.batch_alter_table("agent_workers") as batch:
        batch.add_column(sa.Column("claiming", sa.Boolean(), nullable=False, server_default=sa.false()))
