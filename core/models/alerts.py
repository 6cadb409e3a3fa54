"""Alerting: rules as data, the state of each alert with its history, contact points and their routing,
silences, the notification outbox (the delivery log) and the evaluator's lease."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, utcnow

SEVERITIES = ("info", "warning", "critical")
ALERT_STATES = ("normal", "pending", "firing", "resolved")
NO_DATA_MODES = ("ok", "alerting", "keep")  # no data counts as normal, as the condition being true, or changes nothing
CONTACT_KINDS = ("webhook", "email", "sentry")
BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class AlertRule(Base):
    """A condition on one metric: `metric op threshold` over a window, within a scope, held for a pending period."""

    __tablename__ = "agent_alert_rules"
    __table_args__ = ({"sqlite_autoincrement": True},)  # a removed rule's id is never given again (migration 0014)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(40))
    op: Mapped[str] = mapped_column(String(2), default=">")
    # The threshold is either a number or the name of a setting (core.config), so the checklist's numbers live once.
    threshold: Mapped[float | None] = mapped_column(Float)
    threshold_setting: Mapped[str | None] = mapped_column(String(64))
    window_minutes: Mapped[int] = mapped_column(default=60)
    window_setting: Mapped[str | None] = mapped_column(String(64))
    agent_type: Mapped[str | None] = mapped_column(String(40))
    shop_id: Mapped[int | None]
    severity: Mapped[str] = mapped_column(String(10), default="warning")
    pending_seconds: Mapped[int] = mapped_column(default=0)
    pending_setting: Mapped[str | None] = mapped_column(String(64))
    keep_firing_seconds: Mapped[int] = mapped_column(default=0)
    no_data: Mapped[str] = mapped_column(String(10), default="ok")
    rollback_trigger: Mapped[bool] = mapped_column(default=False)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    updated_by: Mapped[str] = mapped_column(String(100), default="system")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertState(Base):
    """One alert: a rule and one label set (e.g. one probed URL), its state and who acknowledged it."""

    __tablename__ = "agent_alert_states"
    # sqlite_autoincrement: an old notification's "ack 12" must never reach a newer alert (migration 0014).
    __table_args__ = (UniqueConstraint("rule_id", "series"), Index("ix_agent_alert_states_state", "state"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("agent_alert_rules.id", ondelete="CASCADE"))
    series: Mapped[str] = mapped_column(String(300), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(10), default="normal")
    value: Mapped[float | None] = mapped_column(Float)
    pending_since: Mapped[datetime | None]
    firing_since: Mapped[datetime | None]
    last_true_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(100))
    acked_at: Mapped[datetime | None]
    ack_comment: Mapped[str | None] = mapped_column(Text)


class AlertTransition(Base):
    """The state history: every change of an alert's state, with the value that caused it."""

    __tablename__ = "agent_alert_history"
    __table_args__ = (Index("ix_agent_alert_history_at", "at"), Index("ix_agent_alert_history_alert", "alert_id", "at"))
    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("agent_alert_states.id", ondelete="CASCADE"))
    rule_id: Mapped[int]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    from_state: Mapped[str] = mapped_column(String(10))
    to_state: Mapped[str] = mapped_column(String(10))
    value: Mapped[float | None] = mapped_column(Float)


class AlertContact(Base):
    """A contact point kept in the database, with its routing: which severities and labels reach it, how alerts are
    grouped, and how often a firing group is repeated."""

    __tablename__ = "agent_alert_contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(Text, default="")  # webhook URL (a secret: shown masked) or e-mail address
    min_severity: Mapped[str] = mapped_column(String(10), default="warning")
    matchers: Mapped[list[Any]] = mapped_column(default=list)
    group_by: Mapped[list[Any]] = mapped_column(default=list)
    repeat_minutes: Mapped[float | None] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_by: Mapped[str] = mapped_column(String(100), default="system")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertGroup(Base):
    """What a contact point was last told about a group of alerts, so a repeat waits for the repeat interval."""

    __tablename__ = "agent_alert_groups"
    contact: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text, default="")
    last_sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertSilence(Base):
    """Alerts whose labels match every matcher are not notified until ENDS_AT (or until expired by hand)."""

    __tablename__ = "agent_alert_silences"
    __table_args__ = (Index("ix_agent_alert_silences_ends", "ends_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    matchers: Mapped[list[Any]] = mapped_column(default=list)
    starts_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expired_by: Mapped[str | None] = mapped_column(String(100))


class AlertDelivery(Base):
    """The outbox and delivery log: one notification to one contact point, its attempts and its outcome."""

    __tablename__ = "agent_alert_deliveries"
    __table_args__ = (Index("ix_agent_alert_deliveries_status", "status", "id"),
                      Index("ix_agent_alert_deliveries_created", "created_at"))
    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    contact: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    group_key: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | sending | sent | failed
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class AlertLease(Base):
    """One row (id=1): the evaluator that holds it until EXPIRES_AT is the only one evaluating."""

    __tablename__ = "agent_alert_lease"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
