"""Agent types, their templates, and agents activated for a shop."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, utcnow

AGENT_TYPES = (
    "rebooking", "no_show_fee", "birthday_wishes", "holiday_greetings", "review_request",
    "retention", "upsell", "appointment_reminder", "custom",
)
INSTANCE_STATUSES = ("draft", "active", "paused", "inactive", "error")


class Agent(Base):
    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentTemplate(Base):
    __tablename__ = "agent_templates"
    __table_args__ = (UniqueConstraint("agent_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(default=1)
    channel: Mapped[str] = mapped_column(String(10), default="sms")
    system_prompt: Mapped[str] = mapped_column(Text)
    initial_message: Mapped[str] = mapped_column(Text)
    follow_ups: Mapped[list[Any]] = mapped_column(default=list)
    required_variables: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentInstance(Base):
    __tablename__ = "agent_instances"
    __table_args__ = (UniqueConstraint("agent_id", "shop_id"), Index("ix_agent_instances_shop", "shop_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    agent_type: Mapped[str] = mapped_column(String(40))
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    schedule: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
