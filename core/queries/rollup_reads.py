"""Sums and histograms over a window, from hourly rollups at the edges and daily rollups in between."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from core.auth import Actor
from core.models import (
    AgentMetric, AgentMetricDaily, AgentResponseBucket, AgentResponseDailyByShop, AgentResponseDailyByType, utcnow,
)
from core.queries.scope import shop_filter
from core.rollups_daily import day_of, floor_day

SUM_COLUMNS = ("created", "completed", "failed", "opted_out", "prompt_tokens", "completion_tokens", "cost_usd")
# Up to this many hours a window reads hourly rows only; longer windows read whole days from the daily rollups.
HOURLY_ONLY_HOURS = 48


@dataclass
class Plan:
    since: datetime
    hourly: list[tuple[datetime, datetime | None]] = field(default_factory=list)  # [start, end) ranges
    days: list[datetime] = field(default_factory=list)  # whole days read from the daily tables


def plan_window(session: Session, *, actor: Actor, since: datetime, now: datetime | None = None) -> Plan:
    """Hourly rows for partial days (and for scoped users), daily rows for whole days that have them."""
    now = now or utcnow()
    if actor.shop_ids is not None or now - since <= timedelta(hours=HOURLY_ONLY_HOURS):
        return Plan(since, hourly=[(since, None)])
    first, today = floor_day(since) + (timedelta(days=1) if since != floor_day(since) else timedelta(0)), floor_day(now)
    covered = {_as_dt(d) for d in session.scalars(select(AgentMetricDaily.day).distinct().where(
        AgentMetricDaily.day >= first, AgentMetricDaily.day < today))}
    plan, cursor = Plan(since), since
    day = first
    while day < today:
        if day in covered:
            if cursor < day:
                plan.hourly.append((cursor, day))
            plan.days.append(day)
            cursor = day + timedelta(days=1)
        day += timedelta(days=1)
    plan.hourly.append((cursor, None))
    return plan


def _as_dt(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _hour_ranges(column: Any, plan: Plan) -> list[Any]:
    from sqlalchemy import and_, or_

    parts = [and_(column >= a, column < b) if b else column >= a for a, b in plan.hourly]
    return [or_(*parts)] if parts else [column.is_(None)]


def metric_sums(session: Session, *, actor: Actor, plan: Plan, by: str | None = None) -> dict[Any, dict[str, float]]:
    """SUM_COLUMNS per key (None, 'agent_type', 'shop_id' or 'day') over the plan's hours and days."""
    out: dict[Any, dict[str, float]] = defaultdict(lambda: dict.fromkeys(SUM_COLUMNS, 0))
    for model, time_col, where in ((AgentMetric, AgentMetric.hour, _hour_ranges(AgentMetric.hour, plan)),
                                   (AgentMetricDaily, AgentMetricDaily.day,
                                    [AgentMetricDaily.day.in_(plan.days)] if plan.days else None)):
        if where is None:
            continue
        key = _key(session, model, time_col, by)
        cols = [func.coalesce(func.sum(getattr(model, c)), 0) for c in SUM_COLUMNS]
        query = select(key, *cols).where(*where, *shop_filter(actor, model.shop_id)).group_by(literal_column("k"))
        for row in session.execute(query):
            target = out[_norm(row[0], by)]
            for c, v in zip(SUM_COLUMNS, row[1:]):
                target[c] += float(v or 0)
    return dict(out)


def histograms(session: Session, *, actor: Actor, plan: Plan, by: str | None = None) -> dict[Any, dict[int, int]]:
    """Response-time histograms per key over the plan (daily by type or by shop, hourly at the edges)."""
    out: dict[Any, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    b = AgentResponseBucket
    sources = [(b, b.hour, _hour_ranges(b.hour, plan) + shop_filter(actor, b.shop_id))]
    if plan.days:
        daily = AgentResponseDailyByShop if by == "shop_id" else AgentResponseDailyByType
        sources.append((daily, daily.day, [daily.day.in_(plan.days)]))
    for model, time_col, where in sources:
        key = _key(session, model, time_col, by)
        for k, bucket, n in session.execute(select(key, model.bucket, func.sum(model.count)).where(*where)
                                            .group_by(literal_column("k"), model.bucket)):
            out[_norm(k, by)][int(bucket)] += int(n)
    return {k: dict(v) for k, v in out.items()}


def _key(session: Session, model: Any, time_col: Any, by: str | None) -> Any:
    if by is None:
        return literal_column("0").label("k")
    if by in ("day", "hour"):
        return (day_of(session, time_col) if by == "day" else time_col).label("k")
    return getattr(model, by).label("k")


def _norm(value: Any, by: str | None) -> Any:
    return _as_dt(value) if by in ("day", "hour") else (None if by is None else value)
