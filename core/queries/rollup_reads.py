"""Sums and histograms over a window to the minute: whole hours from the hourly rollups (whole days from the daily
ones), the current hour from its hourly rows too (nothing is created after now), and the partial hour at the start
with at most 30 minutes of raw conversations (an indexed range of created_at), in one scan for sums and histograms:
a window starting early in its hour reads that whole hour from the rollups less the minutes before its start, one
starting late reads the minutes after its start.

The readers run in one snapshot (core.db.snapshot_session), and the worker counts a conversation in the hourly
rollups in the statement that changes its status, so within a snapshot an hour's rollups hold exactly what its raw
conversations say: taking the minutes before the start away from the whole hour is exact. A whole day is its daily
rows plus its fine rows not folded yet, exact too (see _fine)."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal_column, or_, select
from sqlalchemy.orm import Session

from core.auth import Actor
from core.models import (
    AgentMetric, AgentMetricDaily, AgentMetricDailyByShop, AgentMetricDailyByType, AgentMetricHourlyByShop,
    AgentMetricHourlyByShopType, AgentMetricHourlyByType, AgentResponseBucket, AgentResponseDailyByShop,
    AgentResponseDailyByShopType, AgentResponseDailyByType, AgentResponseHourlyByShop, AgentResponseHourlyByShopType,
    AgentResponseHourlyByType, Conversation, utcnow,
)
from core.queries.scope import shop_filter
from core.rollups import BUCKET_RATIO, TERMINAL_COLUMNS, floor_hour
from core.rollups_compact import joined_counts, sum_stored_by_key
from core.rollups_daily import day_of, floor_day

SUM_COLUMNS = ("created", "completed", "failed", "opted_out", "prompt_tokens", "completion_tokens", "cost_usd")
# Up to this many hours a window reads hourly rows only; longer windows read whole days from the daily rollups.
HOURLY_ONLY_HOURS = 48
Range = tuple[datetime, datetime | None]  # [start, end); None: everything since start
# A window starting fewer minutes than this into its hour reads the whole hour less the minutes before its start;
# later starts read the minutes after it: at most 30 minutes of raw conversations either way (0: always after).
WHOLE_FIRST_HOUR_BELOW_MINUTES = 30


@dataclass
class Plan:
    since: datetime
    hourly: list[Range] = field(default_factory=list)  # whole hours read from the hourly rollups
    days: list[datetime] = field(default_factory=list)  # whole days read from the daily tables
    raw: list[Range] = field(default_factory=list)  # the partial hour at the start, read from the conversations
    less: list[Range] = field(default_factory=list)  # minutes before the start of a first hour read whole: taken away


def plan_window(session: Session, *, actor: Actor, since: datetime, now: datetime | None = None) -> Plan:
    """Raw rows for the partial hour at the start, daily rows for whole days that have them, hourly rows from there
    on, the current hour included: nothing is created after now, so its hourly rows hold all of it so far."""
    current = floor_hour(now or utcnow())
    if since > current:  # a window inside the current hour: its minutes from the raw rows
        return Plan(since, raw=[(since, None)])
    plan = _whole_hours(session, actor=actor, since=since, current=current)
    if plan.hourly and plan.hourly[-1][1] == current:
        plan.hourly[-1] = (plan.hourly[-1][0], None)
    else:
        plan.hourly.append((current, None))
    return plan


def _whole_hours(session: Session, *, actor: Actor, since: datetime, current: datetime) -> Plan:
    """The plan up to the current hour: the partial hour at the start raw (or read whole, less its minutes before
    the start), whole days daily, whole hours hourly."""
    hour = floor_hour(since)
    if since == hour:
        first_whole, plan = since, Plan(since)
    elif since - hour < timedelta(minutes=WHOLE_FIRST_HOUR_BELOW_MINUTES):
        first_whole, plan = hour, Plan(since, less=[(hour, since)])
    else:
        first_whole = hour + timedelta(hours=1)
        plan = Plan(since, raw=[(since, first_whole)])
    if first_whole >= current:
        return plan
    if current - first_whole <= timedelta(hours=HOURLY_ONLY_HOURS):
        plan.hourly.append((first_whole, current))
        return plan
    first_day = floor_day(first_whole) + (timedelta(days=1) if first_whole != floor_day(first_whole) else timedelta(0))
    today = floor_day(current)
    d = AgentMetricDailyByType  # the smallest daily table: ~10 rows a day
    covered = {as_utc(day) for day in session.scalars(
        select(d.day).distinct().where(d.day >= first_day, d.day < today))}
    cursor, day = first_whole, first_day
    while day < today:
        if day in covered:
            if cursor < day:
                plan.hourly.append((cursor, day))
            plan.days.append(day)
            cursor = day + timedelta(days=1)
        day += timedelta(days=1)
    if cursor < current:
        plan.hourly.append((cursor, current))
    return plan


def as_utc(value: Any) -> datetime:
    """A timestamp read back from either database (SQLite gives strings for computed ones) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def in_ranges(column: Any, ranges: list[Range]) -> Any:
    """SQL: COLUMN within any of RANGES (half-open; an open end reaches now)."""
    return or_(*[and_(column >= a, column < b) if b else column >= a for a, b in ranges])


def window_figures(session: Session, *, actor: Actor, plan: Plan, by: str | None = None, sums: bool = True,
                   hists: bool = True) -> tuple[dict[Any, dict[str, float]], dict[Any, dict[int, int]]]:
    """SUM_COLUMNS and response-time histograms per key (None, 'agent_type', 'shop_id', 'hour', 'day' or '5min')
    over PLAN: whole hours and days from the rollups, the raw minutes read once for both. Only what SUMS and HISTS
    ask for is read from the rollups."""
    out_sums: dict[Any, dict[str, float]] = defaultdict(lambda: dict.fromkeys(SUM_COLUMNS, 0))
    out_hists: dict[Any, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    if sums:
        _add_rollup_sums(session, actor, plan, by, out_sums)
    if hists:
        _add_rollup_histograms(session, actor, plan, by, out_hists)
    if plan.raw:
        _add_raw(session, actor, plan.raw, by, out_sums if sums else None, out_hists if hists else None)
    if plan.less:
        taken = _add_raw(session, actor, plan.less, by, out_sums if sums else None, out_hists if hists else None,
                         sign=-1)
        _drop_emptied(taken, out_sums, out_hists)
    return dict(out_sums), {k: dict(v) for k, v in out_hists.items()}


def _drop_emptied(keys: set[Any], sums: dict[Any, dict[str, float]], hists: dict[Any, dict[int, int]]) -> None:
    """Keys whose every conversation was created before the window (the minutes taken away) are not in it, and
    neither are buckets emptied that way: as if those minutes had never been read."""
    for key in keys:
        if key in sums and sums[key]["created"] == 0:
            del sums[key]
        if key in hists:
            kept = {b: n for b, n in hists[key].items() if n}
            if kept:
                hists[key] = defaultdict(int, kept)
            else:
                del hists[key]


def metric_sums(session: Session, *, actor: Actor, plan: Plan, by: str | None = None) -> dict[Any, dict[str, float]]:
    """SUM_COLUMNS per key over the plan (window_figures without the histograms)."""
    return window_figures(session, actor=actor, plan=plan, by=by, hists=False)[0]


def histograms(session: Session, *, actor: Actor, plan: Plan, by: str | None = None) -> dict[Any, dict[int, int]]:
    """Response-time histograms per key over the plan (window_figures without the sums)."""
    return window_figures(session, actor=actor, plan=plan, by=by, sums=False)[1]


def _add_rollup_sums(session: Session, actor: Actor, plan: Plan, by: str | None,
                     out: dict[Any, dict[str, float]]) -> None:
    """Whole hours from the compact sums, whole days from the daily sums, and both plus the agent_metrics rows not
    folded yet."""
    m = AgentMetric
    queries = [_rollup_sums(session, actor, m, m.hour, in_ranges(m.hour, fine), by)] if (fine := _fine(plan)) else []
    if plan.hourly:
        compact = _by_table(by, actor, AgentMetricHourlyByType, AgentMetricHourlyByShop, AgentMetricHourlyByShopType)
        queries.append(_rollup_sums(session, actor, compact, compact.hour, in_ranges(compact.hour, plan.hourly), by))
    if plan.days:
        d = _by_table(by, actor, AgentMetricDailyByType, AgentMetricDailyByShop, AgentMetricDaily)
        queries.append(_rollup_sums(session, actor, d, d.day, d.day.in_(plan.days), by))
    for query in queries:
        for row in _rows(session, query.group_by(literal_column("k"))):
            target = out[_norm(row[0], by)]
            for c, v in zip(SUM_COLUMNS, row[1:]):
                target[c] += float(v or 0)


def _fine(plan: Plan) -> list[Range]:
    """Where fine rollup rows may be: the whole hours and the whole days. A daily row is written from the compact
    hourly rows when the probe folds, so a late finish of a day already written (a conversation created days ago,
    finishing now) waits in the fine rows until the next fold, which writes that day again in the same transaction:
    in any snapshot, a day's daily rows plus its fine rows hold all of it."""
    days: list[Range] = []  # runs of whole days: one range a run
    for day in plan.days:
        if days and days[-1][1] == day:
            days[-1] = (days[-1][0], day + timedelta(days=1))
        else:
            days.append((day, day + timedelta(days=1)))
    return days + plan.hourly


def _rollup_sums(session: Session, actor: Actor, model: Any, time_col: Any, where: Any, by: str | None) -> Any:
    cols = [func.coalesce(func.sum(getattr(model, c)), 0) for c in SUM_COLUMNS]
    shops = shop_filter(actor, model.shop_id) if hasattr(model, "shop_id") else []  # by type: unscoped users only
    return select(_key(session, model, time_col, by), *cols).where(where, *shops)


def _add_raw(session: Session, actor: Actor, ranges: list[Range], by: str | None,
             sums: dict[Any, dict[str, float]] | None, hists: dict[Any, dict[int, int]] | None,
             sign: int = 1) -> set[Any]:
    """The rollups' columns and buckets computed from the conversations created in RANGES (as core.rollups.rebuild
    does), added to SUMS and HISTS (taken away with SIGN -1): one scan, grouped by key and response-time bucket.
    Returns the keys met."""
    c = Conversation
    finished = c.status.in_(TERMINAL_COLUMNS)
    timed = and_(c.status == "completed", c.response_time_ms.is_not(None))
    bucket = case((timed, _bucket_sql(session, c.response_time_ms)), else_=None).label("bucket")
    cols = [func.count(), *[func.count().filter(c.status == s) for s in ("completed", "failed", "opted_out")],
            *[func.coalesce(func.sum(col).filter(finished), 0) for col in (c.prompt_tokens, c.completion_tokens,
                                                                           c.cost_usd)]]
    query = (select(_key(session, c, c.created_at, by), bucket, *cols)
             .where(in_ranges(c.created_at, ranges), *shop_filter(actor, c.shop_id))
             .group_by(literal_column("k"), literal_column("bucket")))
    totals: dict[Any, list[Any]] = {}  # a month by shop is a thousand rows (key × bucket): added up per key here
    for k, b, *figures in _rows(session, query):
        key = _norm(k, by)
        if hists is not None and b is not None:  # every row of a bucket's group is a timed, completed one
            hists[key][int(b)] += sign * int(figures[0])
        running = totals.setdefault(key, [0] * len(SUM_COLUMNS))
        for i, v in enumerate(figures):
            if v:
                running[i] += v  # ints and Decimals add exactly; float once at the end
    for key, running in totals.items() if sums is not None else ():
        target = sums[key]  # type: ignore[index]
        for col, total in zip(SUM_COLUMNS, running):
            target[col] += sign * float(total)
    return set(totals)


def _add_rollup_histograms(session: Session, actor: Actor, plan: Plan, by: str | None,
                           out: dict[Any, dict[int, int]]) -> None:
    """Whole days from the compact daily rows, whole hours from the compact hourly rows, both plus the fine rows not
    yet folded."""
    b = AgentResponseBucket
    compact, queries = [], []
    if fine := _fine(plan):
        queries.append(select(_key(session, b, b.hour, by), b.bucket, func.sum(b.count))
                       .where(in_ranges(b.hour, fine), *shop_filter(actor, b.shop_id)).group_by(b.bucket))
    if plan.hourly:
        compact.append(_compact_query(session, actor, plan.hourly, by))
    if plan.days:
        daily = _by_table(by, actor, AgentResponseDailyByType, AgentResponseDailyByShop, AgentResponseDailyByShopType)
        shops = shop_filter(actor, daily.shop_id) if actor.shop_ids is not None else []
        compact.append(select(_key(session, daily, daily.day, by), joined_counts(session, daily.counts))
                       .where(daily.day.in_(plan.days), *shops))
    # Thousands of stored histograms on a month by shop: joined per key in SQL, all summed by one numpy pass.
    stored = sum_stored_by_key((_norm(k, by), joined) for query in compact
                               for k, joined in _rows(session, query.group_by(literal_column("k"))))
    for k, counts in stored.items():  # out is still empty here
        out[k] = defaultdict(int, counts)
    for query in queries:
        for k, bucket, n in _rows(session, query.group_by(literal_column("k"))):
            out[_norm(k, by)][int(bucket)] += int(n)


def _rows(session: Session, query: Any) -> Any:
    """QUERY's rows through the session's connection: plain Core rows, without the ORM's per-row loading (a
    month by shop returns thousands of rows; the ORM path cost about 1.4 µs each)."""
    return session.connection().execute(query).all()  # one fetchall: iterating the result fetched row by row


def _by_table(by: str | None, actor: Actor, by_type: Any, by_shop: Any, by_shop_type: Any) -> Any:
    """The smallest table that answers BY for ACTOR: per type for everyone, per shop for a shop breakdown or a user
    who sees some shops only, per shop and type for such a user's breakdown by type."""
    scoped = actor.shop_ids is not None
    if by == "shop_id" or (scoped and by != "agent_type"):
        return by_shop
    return by_shop_type if scoped else by_type


def _compact_query(session: Session, actor: Actor, ranges: list[Range], by: str | None) -> Any:
    """The smallest compact table that answers BY for ACTOR: per type for everyone, per shop for a shop breakdown
    or a user who sees some shops only, per shop and type for such a user's breakdown by type."""
    model = _by_table(by, actor, AgentResponseHourlyByType, AgentResponseHourlyByShop, AgentResponseHourlyByShopType)
    shops = shop_filter(actor, model.shop_id) if actor.shop_ids is not None else []
    return select(_key(session, model, model.hour, by), joined_counts(session, model.counts)).where(
        in_ranges(model.hour, ranges), *shops)


def _bucket_sql(session: Session, ms: Any) -> Any:
    """core.rollups.bucket_of in SQL (the same expression `rollups rebuild` uses)."""
    at_least_1 = func.greatest(ms, 1) if _is_pg(session) else func.max(ms, 1)
    return func.floor(func.ln(at_least_1) / math.log(BUCKET_RATIO))


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _key(session: Session, model: Any, time_col: Any, by: str | None) -> Any:
    if by is None:
        return literal_column("0").label("k")
    if by == "day":
        return day_of(session, time_col).label("k")
    if by == "hour":
        return (time_col if model is not Conversation else hour_of(session, time_col)).label("k")
    if by == "5min":
        return _five_minutes_of(session, time_col).label("k")
    return getattr(model, by).label("k")


def hour_of(session: Session, column: Any) -> Any:
    """SQL for the UTC hour of a timestamp column, on PostgreSQL and SQLite."""
    if _is_pg(session):
        return func.date_trunc("hour", column, "UTC")
    return func.strftime("%Y-%m-%d %H:00:00.000000", column)


def _five_minutes_of(session: Session, column: Any) -> Any:
    if _is_pg(session):
        return func.date_bin(literal_column("interval '5 minutes'"), column,
                             literal_column("timestamptz '2000-01-01 00:00:00+00'"))
    return func.datetime(cast(func.strftime("%s", column), Integer) // 300 * 300, "unixepoch")


def _norm(value: Any, by: str | None) -> Any:
    return as_utc(value) if by in ("day", "hour", "5min") else (None if by is None else value)
