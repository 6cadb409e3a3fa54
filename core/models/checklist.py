"""The live checklist: one run per environment and release, every result with its evidence (history is kept)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, utcnow

RESULT_KINDS = ("check", "tick", "waive", "blocked")


class ChecklistRun(Base):
    """The checklist for one environment and release: who started it, when it was deployed and signed off."""

    __tablename__ = "agent_checklist_runs"
    __table_args__ = (Index("ix_agent_checklist_runs_env_release", "environment", "release", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(String(16))
    release: Mapped[str] = mapped_column(String(100))
    started_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    deployed_at: Mapped[datetime | None]  # the post-deployment windows count from here
    signed_off_by: Mapped[str | None] = mapped_column(String(100))
    signed_off_at: Mapped[datetime | None]
    sign_off_note: Mapped[str | None] = mapped_column(Text)


class ChecklistResult(Base):
    """One outcome of one item: a check with its evidence, a manual tick, a waiver (with its reason), a block."""

    __tablename__ = "agent_checklist_results"
    __table_args__ = (Index("ix_agent_checklist_results_run_item", "run_id", "item_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("agent_checklist_runs.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # check | tick | waive | blocked
    status: Mapped[str] = mapped_column(String(8))  # pass | warn | fail | done | waived | blocked
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
