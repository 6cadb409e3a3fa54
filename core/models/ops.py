"""Operational state: the kill switch and scope, the audit trail, workers, probes, rollbacks."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from core.models.base import Base, utcnow

ACTIVATION_MODES = ("off", "limited", "full")


class AgentSettings(Base):
    """One row (id=1): the switch and scope every worker obeys; version bumps on each change."""

    __tablename__ = "agent_settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(default=1)
    mode: Mapped[str] = mapped_column(String(10), default="off")
    allowed_shops: Mapped[list[Any]] = mapped_column(default=list)
    allowed_agent_types: Mapped[list[Any]] = mapped_column(default=list)
    shop_percent: Mapped[int | None]
    disabled_agent_types: Mapped[list[Any]] = mapped_column(default=list)
    changed_by: Mapped[str] = mapped_column(String(100), default="system")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")


class AuditRecord(Base):
    """Append-only; each record carries the hash of the one before it."""

    __tablename__ = "agent_audit_log"
    __table_args__ = (
        Index("ix_agent_audit_log_created", "created_at"),
        Index("ix_agent_audit_log_actor", "actor", "created_at"),
        Index("ix_agent_audit_log_action", "action", "created_at"),
        Index("ix_agent_audit_log_target", "target", "seq"),  # a conversation's audit trail (migration 0006)
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | refused | failed
    reason: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))  # the HMAC key that sealed it; NULL: before keying


class AuditHead(Base):
    """The chain's tip (id=1); writers lock it first so records are chained one at a time."""

    __tablename__ = "agent_audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)
    key_id: Mapped[str | None] = mapped_column(String(16))  # the key of the newest record


class WorkerHeartbeat(Base):
    __tablename__ = "agent_workers"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None]
    in_flight: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    settings_version: Mapped[int] = mapped_column(default=0)
    settings_seen_at: Mapped[datetime | None]
    breaker_state: Mapped[str] = mapped_column(String(16), default="closed")
    rss_mb: Mapped[float] = mapped_column(Float, default=0)
    rss_start_mb: Mapped[float] = mapped_column(Float, default=0, server_default="0")
    cpu_percent: Mapped[float] = mapped_column(Float, default=0)
    # The worker's own AGENT_SYSTEM_ENABLED: false starts nothing whatever the stored switch says (migration 0015).
    env_enabled: Mapped[bool] = mapped_column(default=True, server_default=true())


class MaskedURL(TypeDecorator):
    """A URL column that stores only the masked form: whatever writes it (ORM or Core insert), no credential is kept."""

    impl = String(300)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        from core.config import mask_url

        return None if value is None else mask_url(value)[:300]


class HealthProbe(Base):
    __tablename__ = "agent_health_probes"
    __table_args__ = (Index("ix_agent_health_probes_url_time", "url", "checked_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    url: Mapped[str] = mapped_column(MaskedURL())
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool]
    status_code: Mapped[int | None]
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class RollbackRun(Base):
    __tablename__ = "agent_rollback_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # immediate | full | database
    state: Mapped[str] = mapped_column(String(20), default="requested")
    requested_by: Mapped[str] = mapped_column(String(100))
    approved_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    target_s: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
