"""Daily rollups derived from the hourly ones, so 7- and 30-day windows read thousands of rows, not a million.

They are refreshed by `python -m core probe` (every cycle, the last few days), by `seed` and by
`rollups rebuild` (every day). Readers use a day only when its daily rows exist; any other day is
read from the hourly rows, so a missing refresh makes a page slower, never wrong.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy.orm import Session

from core.models import (
    AgentMetricDaily, AgentMetricDailyByShop, AgentMetricDailyByType, AgentMetricHourlyByShop,
    AgentMetricHourlyByShopType, AgentMetricHourlyByType, AgentResponseDailyByShop, AgentResponseDailyByType,
    AgentResponseDailyByShopType, AgentResponseHourlyByShop, AgentResponseHourlyByShopType, AgentResponseHourlyByType,
    utcnow,
)
from core.rollups import floor_hour
from core.rollups_compact import (
    dialect_name, each_bucket, fold_closed_hours, fold_current_histograms, object_agg, time_param,
)
from core.rollups_sums import fold_closed_sums, fold_current_sums

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


def refresh_daily(session: Session | Connection, *, days: int | None = RECENT_DAYS, now: datetime | None = None,
                  stale_only: bool = False, schema_0012: bool = True) -> int:
    """Fold closed hours, then recompute the last DAYS whole days (all, when None) from the hourly rollups; returns
    rows written. STALE_ONLY (the probe, every cycle): only those of the DAYS whose hours this fold changed or that
    have no daily rows yet. SCHEMA_0012=False leaves the sums and the per shop and type days alone (migration 0010
    runs before their tables exist)."""
    now, touched = now or utcnow(), set()
    fold_closed_hours(session, before=now, touched=touched)
    if schema_0012:
        fold_closed_sums(session, before=floor_hour(now), touched=touched)
    today = floor_day(now)
    start = today - timedelta(days=days) if days else None
    spans: list[tuple[datetime | None, datetime]] = [(start, today)]
    if stale_only and start is not None and schema_0012:
        spans = [(d, d + timedelta(days=1)) for d in _stale_days(session, start, today, touched)]
    written = 0
    for span in spans:
        written += _recompute(session, *span, schema_0012=schema_0012)
    return written


def fold_current_hour(executor: Session | Connection, *, now: datetime | None = None) -> int:
    """Fold the current hour's fine rows (sums and histograms) into its compact rows, but for those a worker holds;
    returns rows folded. Run it in a short transaction of its own (the probe does, every cycle): workers write to
    these rows all the time, and each waits for the fold's commit when it meets a row the fold took."""
    now = now or utcnow()
    return fold_current_sums(executor, now=now) + fold_current_histograms(executor, now=now)


def _stale_days(session: Session | Connection, start: datetime, today: datetime, touched: set[datetime]) -> list:
    """The whole days before TODAY whose hours were just folded, however old (a conversation created a week ago
    may finish now: its day's daily rows must take it in the fold's transaction, or readers lose it), and the days
    in [START, TODAY) that have no daily rows (all the daily tables are written together: the per-type sums stand
    for them)."""
    d = AgentMetricDailyByType
    have = {_as_utc(day) for day in session.execute(select(d.day).distinct().where(d.day >= start, d.day < today))
            .scalars()}
    changed = {floor_day(_as_utc(hour)) for hour in touched}
    missing = {start + timedelta(days=i) for i in range((today - start).days)} - have
    return sorted(day for day in changed | missing if day < today)


def _as_utc(value: Any) -> datetime:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _recompute(session: Session | Connection, start: datetime | None, end: datetime, *, schema_0012: bool) -> int:
    """Delete and write again the daily rows of [START, END) (from the beginning, when START is None)."""
    today, written = end, 0
    histograms = [(AgentResponseDailyByType, AgentResponseHourlyByType, ("agent_type",)),
                  (AgentResponseDailyByShop, AgentResponseHourlyByShop, ("shop_id",))]
    sums = [(AgentMetricDaily, AgentMetricHourlyByShopType, ("shop_id", "agent_type")),
            (AgentMetricDailyByType, AgentMetricHourlyByType, ("agent_type",)),
            (AgentMetricDailyByShop, AgentMetricHourlyByShop, ("shop_id",))] if schema_0012 else []
    if schema_0012:
        histograms.append((AgentResponseDailyByShopType, AgentResponseHourlyByShopType, ("shop_id", "agent_type")))
    for model, _, _ in sums + histograms:
        where = [model.day < today] + ([model.day >= start] if start else [])
        session.execute(delete(model).where(*where))
    for daily, hourly, keys in sums:
        written += _daily_sums(session, daily, hourly, keys, start, today)
    for daily, hourly, keys in histograms:
        written += _daily_histograms(session, daily, hourly, keys, start, today)
    return written


def _daily_sums(session: Session | Connection, daily: Any, hourly: Any, keys: tuple[str, ...], start: datetime | None,
                today: datetime) -> int:
    """Whole days of the compact hourly sums (the fold above left no agent_metrics rows before the current hour)."""
    window = [hourly.hour < today] + ([hourly.hour >= start] if start else [])
    d = day_of(session, hourly.hour)
    cols = ("created", "completed", "failed", "opted_out", "prompt_tokens", "completion_tokens", "cost_usd")
    group = [d, *(getattr(hourly, k) for k in keys)]
    return session.execute(insert(daily).from_select(
        ["day", *keys, *cols], select(*group, *(func.sum(getattr(hourly, c)) for c in cols)).where(*window)
        .group_by(*group))).rowcount


def _daily_histograms(session: Session | Connection, daily: Any, hourly: Any, keys: tuple[str, ...],
                      start: datetime | None, today: datetime) -> int:
    """Whole days of the compact hourly histograms (the fold above left no fine rows before today), summed bucket
    by bucket in SQL."""
    dialect = dialect_name(session)
    each = each_bucket(dialect, "counts")
    if dialect == "postgresql":
        day, value = "date_trunc('day', hour, 'UTC')", "e.value::bigint"
    else:
        day, value = "strftime('%Y-%m-%d 00:00:00.000000', hour)", "e.value"
    cols = ", ".join(keys)
    params = [time_param("today", today)] + ([time_param("start", start)] if start else [])
    stmt = text(
        f"INSERT INTO {daily.__tablename__} (day, {cols}, counts) "
        f"SELECT day, {cols}, {object_agg(dialect, 'bucket', 'n')} FROM ("
        f"SELECT {day} AS day, {cols}, e.key AS bucket, sum({value}) AS n FROM {hourly.__tablename__} "
        f"CROSS JOIN {each} AS e WHERE hour < :today {'AND hour >= :start' if start else ''} "
        f"GROUP BY day, {cols}, e.key) x GROUP BY day, {cols}").bindparams(*params)
    return session.execute(stmt).rowcount
