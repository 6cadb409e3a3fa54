"""the open-conversations index leads with the status

Agent health counted every open conversation of a window row by row: at 10M conversations, 20,000 rows waiting for a
response on each 24-hour summary. The rollups already say how many are open (created less finished), so a window
without whole days now counts only its queue (pending, in progress), which this index reads by status first.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 18:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NAME, TABLE = "ix_agent_conversations_open", "agent_conversations"
OPEN_STATUSES = "status IN ('pending', 'in_progress', 'waiting_response')"


def _create(columns: list[str], include: list[str]) -> None:
    op.create_index(NAME, TABLE, columns, postgresql_where=sa.text(OPEN_STATUSES),
                    sqlite_where=sa.text(OPEN_STATUSES), postgresql_include=include)


def upgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
    _create(["status", "created_at"], ["shop_id"])


def downgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
    _create(["created_at"], ["status", "shop_id"])
