"""Agent health figures from the hourly rollups: the same functions feed the console, the CLI and the API."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.db import snapshot_session
from core.models import Conversation, Shop, utcnow
from core.queries.rollup_reads import HOURLY_ONLY_HOURS, SUM_COLUMNS, Plan, plan_window, window_figures
from core.queries.scope import require_read, shop_filter
from core.rollups import floor_hour, percentile
from core.rollups_daily import floor_day

WINDOWS = {"1h": 1, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}
OPEN = ("pending", "in_progress", "waiting_response")
PERIODS = {"5min": timedelta(minutes=5), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def window_bounds(window_hours: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last WINDOW_HOURS to the minute: from the start of the minute WINDOW_HOURS ago up to NOW."""
    now = now or utcnow()
    return now.replace(second=0, microsecond=0) - timedelta(hours=window_hours), now


def describe_window(since: datetime, until: datetime) -> str:
    """'10:08–11:08 UTC' for the last hour; 'Nov 24 10:08 – Nov 25 10:08 UTC' for longer windows."""
    if until - since < timedelta(hours=2):
        return f"{since:%H:%M}–{until:%H:%M} UTC"
    return f"{since:%b %d %H:%M} – {until:%b %d %H:%M} UTC"


def parse_window(window: str) -> int:
    """Hours in a window name (1h, 24h, 7d, 30d)."""
    from core.errors import UserInputError

    if window not in WINDOWS:
        raise UserInputError(f"The window must be one of {', '.join(WINDOWS)} (got {window!r}).")
    return WINDOWS[window]


@dataclass
class Summary:
    window_hours: int
    since: datetime
    until: datetime
    conversations: int
    by_status: dict[str, int]
    error_rate: float | None
    p95_response_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {"window_hours": self.window_hours, "since": self.since.isoformat(), "until": self.until.isoformat(),
                "window": describe_window(self.since, self.until), "conversations": self.conversations,
                "by_status": self.by_status, "error_rate": self.error_rate, "p95_response_ms": self.p95_response_ms,
                "tokens": self.tokens, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost_usd": round(self.cost_usd, 6)}


def _open_counts(session: Session, actor: Actor, since: datetime, until: datetime,
                 sums: dict[str, float]) -> dict[str, int]:
    """The window's conversations still open, by status. Only the queue (pending, in progress) is counted row by
    row: every other open one waits for a response, and the rollups' SUMS already say how many are open (created
    less finished), exactly, in the read's snapshot."""
    queue = _count_open(session, actor, since, until, OPEN[:2])
    still_open = round(sums["created"] - sums["completed"] - sums["failed"] - sums["opted_out"])
    return {**{status: queue.get(status, 0) for status in OPEN[:2]}, OPEN[2]: still_open - sum(queue.values())}


def _count_open(session: Session, actor: Actor, since: datetime, until: datetime,
                statuses: tuple[str, ...]) -> dict[str, int]:
    """Open conversations of STATUSES created in the window, by status."""
    c = Conversation
    # Bounded at both ends, so PostgreSQL plans only the months of the window, not the empty months ahead and the
    # DEFAULT partition (half the statement's time at 10M); the rollups' current hour reaches now, and so does this.
    rows = session.execute(select(c.status, func.count()).where(
        c.status.in_(statuses), c.created_at >= since, c.created_at <= max(until, utcnow()),
        *shop_filter(actor, c.shop_id)).group_by(c.status))
    return {status: int(n) for status, n in rows}


def get_summary(session: Session, *, actor: Actor, window_hours: int, now: datetime | None = None) -> Summary:
    """Conversations created in the last WINDOW_HOURS (to the minute): by status, error rate, p95, tokens, cost."""
    require_read(actor, Permission.VIEW_HEALTH)
    with snapshot_session(session) as snapshot:  # every figure from one snapshot: the probe folds meanwhile
        return _summary(snapshot, actor, window_hours, now)


def _summary(session: Session, actor: Actor, window_hours: int, now: datetime | None) -> Summary:
    since, until = window_bounds(window_hours, now)
    plan = plan_window(session, actor=actor, since=since, now=until)
    sums, hists = window_figures(session, actor=actor, plan=plan)
    t = sums.get(None, dict.fromkeys(SUM_COLUMNS, 0))
    completed, failed = int(t["completed"]), int(t["failed"])
    by_status = {"completed": completed, "failed": failed, "opted_out": int(t["opted_out"]),
                 **_open_counts(session, actor, since, until, t)}
    return Summary(window_hours=window_hours, since=since, until=until, conversations=int(t["created"]),
                   by_status=by_status,
                   error_rate=failed / (completed + failed) if completed + failed else None,
                   p95_response_ms=percentile(hists.get(None, {}), 0.95), prompt_tokens=int(t["prompt_tokens"]),
                   completion_tokens=int(t["completion_tokens"]), cost_usd=float(t["cost_usd"]))


def get_timeseries(session: Session, *, actor: Actor, window_hours: int,
                   now: datetime | None = None) -> list[dict[str, Any]]:
    """Per 5 minutes (1 h), per hour (up to two days) or per day: volume by status, error rate, p95; every period of
    the window is listed, empty ones with zeros, each under the time its period starts."""
    require_read(actor, Permission.VIEW_HEALTH)
    with snapshot_session(session) as snapshot:
        return _timeseries(snapshot, actor, window_hours, now)


def _timeseries(session: Session, actor: Actor, window_hours: int, now: datetime | None) -> list[dict[str, Any]]:
    since, until = window_bounds(window_hours, now)
    by = "5min" if window_hours <= 1 else ("day" if window_hours > HOURLY_ONLY_HOURS else "hour")
    plan = Plan(since, raw=[(since, None)]) if by == "5min" else plan_window(session, actor=actor, since=since,
                                                                              now=until)
    sums, hists = window_figures(session, actor=actor, plan=plan, by=by)
    periods = sorted(set(sums) | set(_periods(since, until, by)))
    empty = dict.fromkeys(SUM_COLUMNS, 0)
    return [{"period": p, **_row_figures(sums.get(p, empty), hists.get(p, {}))} for p in periods]


def _floor_5min(ts: datetime) -> datetime:
    return ts.replace(minute=ts.minute - ts.minute % 5, second=0, microsecond=0)


def _periods(since: datetime, until: datetime, by: str) -> list[datetime]:
    step = PERIODS[by]
    start = {"day": floor_day, "hour": floor_hour, "5min": _floor_5min}[by](since)
    out = []
    while start <= until:
        out.append(start)
        start += step
    return out


def _row_figures(t: dict[str, float], hist: dict[int, int]) -> dict[str, Any]:
    completed, failed = int(t["completed"]), int(t["failed"])
    return {"created": int(t["created"]), "completed": completed, "failed": failed, "opted_out": int(t["opted_out"]),
            "error_rate": failed / (completed + failed) if completed + failed else None,
            "p95_response_ms": percentile(hist, 0.95)}


def get_breakdown(session: Session, *, actor: Actor, window_hours: int, by: str, top: int = 8,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Volume, error rate and p95 per agent type or per shop (top N by volume, the rest grouped as 'other')."""
    require_read(actor, Permission.VIEW_HEALTH)
    with snapshot_session(session) as snapshot:
        return _breakdown(snapshot, actor, window_hours, by, top, now)


def _breakdown(session: Session, actor: Actor, window_hours: int, by: str, top: int,
               now: datetime | None) -> list[dict[str, Any]]:
    since, until = window_bounds(window_hours, now)
    plan = plan_window(session, actor=actor, since=since, now=until)
    key = "agent_type" if by == "agent_type" else "shop_id"
    sums, hists = window_figures(session, actor=actor, plan=plan, by=key)
    ranked = sorted(sums, key=lambda k: (-sums[k]["created"], k))  # ties by name: the same order whatever was read
    shown = ranked if len(ranked) <= top + 1 else ranked[:top]
    names = _shop_names(session, shown) if key == "shop_id" else {}  # the rest is "other": no names needed
    out = [{"name": names.get(k, str(k)), **_row_figures(sums[k], hists.get(k, {}))} for k in shown]
    if len(ranked) > top + 1:  # "other (1)" would hide a single name: show it instead
        rest_sums, rest_hist = dict.fromkeys(SUM_COLUMNS, 0.0), defaultdict(int)
        for k in ranked[top:]:
            for c in SUM_COLUMNS:
                rest_sums[c] += sums[k][c]
            for bucket, n in hists.get(k, {}).items():
                rest_hist[bucket] += n
        out.append({"name": f"other ({len(ranked) - top})", **_row_figures(rest_sums, rest_hist)})
    return out


def _shop_names(session: Session, ids: list[int]) -> dict[int, str]:
    rows = session.connection().execute(select(Shop.id, Shop.name).where(Shop.id.in_(ids))).all()
    return {i: f"{name} (#{i})" for i, name in rows}


__all__ = ["WINDOWS", "Summary", "describe_window", "get_breakdown", "get_summary", "get_timeseries", "parse_window",
           "window_bounds"]
