"""checklist: runs per environment and release, and every result with its evidence (history kept)

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-26 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import core.models.base

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")
WHEN = core.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_checklist_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("release", sa.String(length=100), nullable=False),
        sa.Column("started_by", sa.String(length=100), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("deployed_at", WHEN, nullable=True),
        sa.Column("signed_off_by", sa.String(length=100), nullable=True),
        sa.Column("signed_off_at", WHEN, nullable=True),
        sa.Column("sign_off_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_checklist_runs")),
    )
    op.create_index("ix_agent_checklist_runs_env_release", "agent_checklist_runs", ["environment", "release"],
                    unique=True)
    op.create_table(
        "agent_checklist_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["agent_checklist_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_agent_checklist_results_run_id_agent_checklist_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_checklist_results")),
    )
    op.create_index("ix_agent_checklist_results_run_item", "agent_checklist_results", ["run_id", "item_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_agent_checklist_results_run_item", table_name="agent_checklist_results")
    op.drop_table("agent_checklist_results")
    op.drop_index("ix_agent_checklist_runs_env_release", table_name="agent_checklist_runs")
    op.drop_table("agent_checklist_runs")
