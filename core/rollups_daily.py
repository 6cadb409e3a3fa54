"""Daily rollups derived from the hourly ones, so 7- and 30-day windows read thousands of rows, not a million.

They are refreshed by `python -m core probe` (every cycle, the last few days), by `seed` and by
`rollups rebuild` (every day). Readers use a day only when its daily rows exist; any other day is
read from the hourly rows, so a missing refresh makes a page slower, never wrong.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.orm import Session

from core.models import (
    AgentMetric, AgentMetricDaily, AgentResponseBucket, AgentResponseDailyByShop, AgentResponseDailyByType, utcnow,
)

RECENT_DAYS = 3


def floor_day(ts: datetime) -> datetime:
    """TS truncated to midnight UTC."""
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def day_of(executor: Session | Connection, column: Any) -> Any:
    """SQL for the UTC day of a timestamp column, on PostgreSQL and SQLite."""
    dialect = executor.dialect if isinstance(executor, Connection) else executor.get_bind().dialect
    if dialect.name == "postgresql":
        return func.date_trunc("day", column, "UTC")
    return func.strftime("%Y-%m-%d 00:00:00.000000", column)


def refresh_daily(session: Session | Connection, *, days: int | None = RECENT_DAYS, now: datetime | None = None) -> int:
    """Recompute the last DAYS whole days (all, when None) from the hourly rollups; returns rows written."""
    today = floor_day(now or utcnow())
    start = today - timedelta(days=days) if days else None
    m, b = AgentMetric, AgentResponseBucket
    written = 0
    for model in (AgentMetricDaily, AgentResponseDailyByType, AgentResponseDailyByShop):
        where = [model.day < today] + ([model.day >= start] if start else [])
        session.execute(delete(model).where(*where))
    window = [m.hour < today] + ([m.hour >= start] if start else [])
    d = day_of(session, m.hour)
    sums = [func.sum(getattr(m, c)) for c in ("created", "completed", "failed", "opted_out", "prompt_tokens",
                                              "completion_tokens", "cost_usd")]
    written += session.execute(insert(AgentMetricDaily).from_select(
        ["day", "shop_id", "agent_type", "created", "completed", "failed", "opted_out", "prompt_tokens",
         "completion_tokens", "cost_usd"],
        select(d, m.shop_id, m.agent_type, *sums).where(*window).group_by(d, m.shop_id, m.agent_type))).rowcount
    bwindow = [b.hour < today] + ([b.hour >= start] if start else [])
    bd = day_of(session, b.hour)
    for model, key in ((AgentResponseDailyByType, b.agent_type), (AgentResponseDailyByShop, b.shop_id)):
        cols = ["day", "agent_type" if model is AgentResponseDailyByType else "shop_id", "bucket", "count"]
        written += session.execute(insert(model).from_select(
            cols, select(bd, key, b.bucket, func.sum(b.count)).where(*bwindow).group_by(bd, key, b.bucket))).rowcount
    return written
