"""Daily rollups derived from the hourly ones, so 7- and 30-day windows read thousands of rows, not a million.

They are refreshed by `python -m core probe` (every cycle, the last few days), by `seed` and by
`rollups rebuild` (every day). Readers use a day only when its daily rows exist; any other day is
read from the hourly rows, so a missing refresh makes a page slower, never wrong.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.orm import Session

from core.models import (
    AgentMetric, AgentMetricDaily, AgentResponseDailyByShop, AgentResponseDailyByType, AgentResponseHourlyByShop,
    AgentResponseHourlyByType, utcnow,
)
from core.rollups_compact import decode, encode, fold_closed_hours, merge_into

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
    """Fold closed hours, then recompute the last DAYS whole days (all, when None) from the hourly rollups; returns
    rows written."""
    now = now or utcnow()
    fold_closed_hours(session, before=now)
    today = floor_day(now)
    start = today - timedelta(days=days) if days else None
    m = AgentMetric
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
    for daily, hourly, key in ((AgentResponseDailyByType, AgentResponseHourlyByType, "agent_type"),
                               (AgentResponseDailyByShop, AgentResponseHourlyByShop, "shop_id")):
        written += _daily_histograms(session, daily, hourly, key, start, today)
    return written


def _daily_histograms(session: Session | Connection, daily: Any, hourly: Any, key: str, start: datetime | None,
                      today: datetime) -> int:
    """Whole days of the compact hourly histograms (the fold above left no fine rows before today)."""
    t = hourly.__table__
    where = [t.c.hour < today] + ([t.c.hour >= start] if start else [])
    days: dict[tuple, dict[int, int]] = defaultdict(dict)
    for hour, k, counts in session.execute(select(t.c.hour, t.c[key], t.c.counts).where(*where)):
        merge_into(days[(floor_day(hour), k)], decode(counts).items())
    rows = [{"day": day, key: k, "counts": encode(hist)} for (day, k), hist in days.items()]
    if rows:
        session.execute(insert(daily), rows)
    return len(rows)
