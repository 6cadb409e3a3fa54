"""worker: claim from an index of open work only; pages with room for updates; drop agent_workers.claiming

The claim ordered by created_at over the whole table: with 1,000,000 finished conversations it walked the
created_at index past ~900,000 of them per claim. It now reads a partial index that holds only open work
(pending, in progress), keyed by when each is due. The status/created and status/lease indexes go: the first
is replaced by it, the second was only ever read by the old claim, and both were written by every claim and
completion. agent_workers.claiming was written on every heartbeat and never read.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CLAIMABLE = "status IN ('pending', 'in_progress')"
DUE_AT = "coalesce(lease_expires_at, next_attempt_at, created_at)"
# PostgreSQL storage: room for the new version of an updated row on its own page, and vacuum that follows
# the rows that change rather than the size of the table (see the README, "Database maintenance").
STORAGE = {
    "agent_conversations": {"fillfactor": 80, "autovacuum_vacuum_scale_factor": 0.01,
                            "autovacuum_vacuum_insert_scale_factor": 0.01, "autovacuum_analyze_scale_factor": 0.01},
    "agent_metrics": {"fillfactor": 50, "autovacuum_vacuum_scale_factor": 0, "autovacuum_vacuum_threshold": 2000},
    "agent_response_buckets": {"fillfactor": 50, "autovacuum_vacuum_scale_factor": 0,
                               "autovacuum_vacuum_threshold": 2000},
}


def upgrade() -> None:
    op.drop_index("ix_agent_conversations_status_created", table_name="agent_conversations")
    op.drop_index("ix_agent_conversations_lease", table_name="agent_conversations")
    op.create_index("ix_agent_conversations_due", "agent_conversations", [sa.text(DUE_AT)],
                    postgresql_where=sa.text(CLAIMABLE), sqlite_where=sa.text(CLAIMABLE))
    if op.get_bind().dialect.name == "postgresql":
        for table, options in STORAGE.items():  # new and updated rows follow; the table is not rewritten
            op.execute(f"ALTER TABLE {table} SET ({', '.join(f'{k} = {v}' for k, v in options.items())})")
    with op.batch_alter_table("agent_workers") as batch:
        batch.drop_column("claiming")


def downgrade() -> None:
    with op.batch_alter_table("agent_workers") as batch:
        batch.add_column(sa.Column("claiming", sa.Boolean(), nullable=False, server_default=sa.false()))
    if op.get_bind().dialect.name == "postgresql":
        for table, options in STORAGE.items():
            op.execute(f"ALTER TABLE {table} RESET ({', '.join(options)})")
    op.drop_index("ix_agent_conversations_due", table_name="agent_conversations")
    op.create_index("ix_agent_conversations_lease", "agent_conversations", ["status", "lease_expires_at"])
    op.create_index("ix_agent_conversations_status_created", "agent_conversations", ["status", "created_at"])
