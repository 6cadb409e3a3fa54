"""Hourly rollups the console reads instead of raw conversations."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, HistogramJSON


class AgentMetric(Base):
    """Per created-hour and instance: how many conversations began, and how many ended how."""

    __tablename__ = "agent_metrics"
    __table_args__ = (Index("ix_agent_metrics_shop_hour", "shop_id", "hour"),)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    agent_instance_id: Mapped[int] = mapped_column(
        ForeignKey("agent_instances.id", ondelete="CASCADE"), primary_key=True)
    shop_id: Mapped[int]
    agent_type: Mapped[str] = mapped_column(String(40))
    created: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    opted_out: Mapped[int] = mapped_column(default=0)
    response_ms_sum: Mapped[int] = mapped_column(default=0)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(14, 6), default=0)


class _HourlySums:
    """The sums of agent_metrics, for a closed hour folded without the instance dimension."""

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    created: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    opted_out: Mapped[int] = mapped_column(default=0)
    response_ms_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(14, 6), default=0)


class AgentMetricHourlyByType(_HourlySums, Base):
    """A closed hour's sums per agent type (all shops): agent_metrics rows of closed hours are folded here
    (core.rollups_sums), so a day is 24 rows per type however many instances ran."""

    __tablename__ = "agent_metrics_hourly_by_type"
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)


class AgentMetricHourlyByShop(_HourlySums, Base):
    """A closed hour's sums per shop (all agent types)."""

    __tablename__ = "agent_metrics_hourly_by_shop"
    __table_args__ = (Index("ix_agent_metrics_hourly_by_shop_shop_hour", "shop_id", "hour"),)
    shop_id: Mapped[int] = mapped_column(primary_key=True)


class AgentMetricHourlyByShopType(_HourlySums, Base):
    """A closed hour's sums per shop and agent type: the daily rollups and users who see some shops only."""

    __tablename__ = "agent_metrics_hourly_by_shop_type"
    __table_args__ = (Index("ix_agent_metrics_hourly_by_shop_type_shop_hour", "shop_id", "hour"),)
    shop_id: Mapped[int] = mapped_column(primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)


class AgentResponseBucket(Base):
    """Response-time histogram of completed conversations, per created-hour and instance, for the hours not yet
    folded into the compact hourly rows: the current hour, and completions that arrived after their hour's fold."""

    __tablename__ = "agent_response_buckets"
    __table_args__ = (Index("ix_agent_response_buckets_shop_hour", "shop_id", "hour"),)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    agent_instance_id: Mapped[int] = mapped_column(
        ForeignKey("agent_instances.id", ondelete="CASCADE"), primary_key=True)
    bucket: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int]
    agent_type: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(default=0)


class AgentResponseHourlyByType(Base):
    """A closed hour's whole response-time histogram per agent type (all shops), as one compact row.

    `counts` maps bucket → count ({"141": 3, ...}). Closed hours are folded here from agent_response_buckets
    (core.rollups_compact), so a day is 24 rows per type however many conversations it held."""

    __tablename__ = "agent_response_hourly_by_type"
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    counts: Mapped[dict[str, Any]] = mapped_column(HistogramJSON)


class AgentResponseHourlyByShop(Base):
    """A closed hour's response-time histogram per shop (all agent types), as one compact row."""

    __tablename__ = "agent_response_hourly_by_shop"
    # Users who see some shops read their shops' hours: without it a month read every shop's rows.
    __table_args__ = (Index("ix_agent_response_hourly_by_shop_shop_hour", "shop_id", "hour"),)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(primary_key=True)
    counts: Mapped[dict[str, Any]] = mapped_column(HistogramJSON)


class AgentResponseHourlyByShopType(Base):
    """A closed hour's response-time histogram per shop and agent type, for users who see some shops only."""

    __tablename__ = "agent_response_hourly_by_shop_type"
    __table_args__ = (Index("ix_agent_response_hourly_by_shop_type_shop_hour", "shop_id", "hour"),)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    counts: Mapped[dict[str, Any]] = mapped_column(HistogramJSON)


class AgentDbTiming(Base):
    """Database time histogram per hour and source (worker, console probe)."""

    __tablename__ = "agent_db_timings"
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    bucket: Mapped[int] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class AgentMetricDaily(Base):
    """Whole days of agent_metrics per shop and agent type, for windows longer than two days."""

    __tablename__ = "agent_metrics_daily"
    __table_args__ = (Index("ix_agent_metrics_daily_shop_day", "shop_id", "day"),)
    day: Mapped[datetime] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    created: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    opted_out: Mapped[int] = mapped_column(default=0)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(14, 6), default=0)


class _DailySums:
    """Whole days of the sums, for windows longer than two days read by everyone (all shops)."""

    day: Mapped[datetime] = mapped_column(primary_key=True)
    created: Mapped[int] = mapped_column(default=0)
    completed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    opted_out: Mapped[int] = mapped_column(default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(14, 6), default=0)


class AgentMetricDailyByType(_DailySums, Base):
    """Whole days of the sums per agent type (all shops): a month is 30 rows per type."""

    __tablename__ = "agent_metrics_daily_by_type"
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)


class AgentMetricDailyByShop(_DailySums, Base):
    """Whole days of the sums per shop (all agent types)."""

    __tablename__ = "agent_metrics_daily_by_shop"
    __table_args__ = (Index("ix_agent_metrics_daily_by_shop_shop_day", "shop_id", "day"),)
    shop_id: Mapped[int] = mapped_column(primary_key=True)


class AgentResponseDailyByType(Base):
    """Whole days of the response-time histogram per agent type (all shops), one compact row each (bucket → count)."""

    __tablename__ = "agent_response_daily_by_type"
    day: Mapped[datetime] = mapped_column(primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    counts: Mapped[dict[str, Any]] = mapped_column(HistogramJSON)


class AgentResponseDailyByShop(Base):
    """Whole days of the response-time histogram per shop (all agent types), one compact row each."""

    __tablename__ = "agent_response_daily_by_shop"
    __table_args__ = (Index("ix_agent_response_daily_by_shop_shop_day", "shop_id", "day"),)
    day: Mapped[datetime] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(primary_key=True)
    counts: Mapped[dict[str, Any]] = mapped_column(HistogramJSON)


class AgentResponseDailyByShopType(Base):
    """Whole days of the response-time histogram per shop and agent type, for users who see some shops only."""

    __tablename__ = "agent_response_daily_by_shop_type"
    __table_args__ = (Index("ix_agent_response_daily_by_shop_type_shop_day", "shop_id", "day"),)
    day: Mapped[datetime] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    counts: Mapped[dict[str, Any]] = mapped_column(HistogramJSON)
