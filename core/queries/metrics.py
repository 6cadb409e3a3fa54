"""Agent health figures from the hourly rollups: the same functions feed the console, the CLI and the API."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.models import AgentMetric, AgentResponseBucket, Conversation, Shop, utcnow
from core.queries.scope import require_read, shop_filter
from core.rollups import percentile, window_start

WINDOWS = {"1h": 1, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}
OPEN = ("pending", "in_progress", "waiting_response")


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
    conversations: int
    by_status: dict[str, int]
    error_rate: float | None
    p95_response_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {"window_hours": self.window_hours, "since": self.since.isoformat(), "conversations": self.conversations,
                "by_status": self.by_status, "error_rate": self.error_rate, "p95_response_ms": self.p95_response_ms,
                "tokens": self.tokens, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost_usd": round(self.cost_usd, 6)}


def _metric_rows(actor: Actor, since: datetime) -> Select:
    m = AgentMetric
    return select(func.coalesce(func.sum(m.created), 0), func.coalesce(func.sum(m.completed), 0),
                  func.coalesce(func.sum(m.failed), 0), func.coalesce(func.sum(m.opted_out), 0),
                  func.coalesce(func.sum(m.prompt_tokens), 0), func.coalesce(func.sum(m.completion_tokens), 0),
                  func.coalesce(func.sum(m.cost_usd), 0)).where(m.hour >= since, *shop_filter(actor, m.shop_id))


def response_histogram(session: Session, *, actor: Actor, since: datetime, extra: list[Any] | None = None) -> dict[int, int]:
    """Bucket → count of completed conversations' response times, created since SINCE, in ACTOR's scope."""
    b = AgentResponseBucket
    rows = session.execute(select(b.bucket, func.sum(b.count)).where(
        b.hour >= since, *shop_filter(actor, b.shop_id), *(extra or [])).group_by(b.bucket))
    return {int(bucket): int(n) for bucket, n in rows}


def _open_counts(session: Session, actor: Actor, since: datetime) -> dict[str, int]:
    c = Conversation
    rows = session.execute(select(c.status, func.count()).where(
        c.status.in_(OPEN), c.created_at >= since, *shop_filter(actor, c.shop_id)).group_by(c.status))
    return {status: int(n) for status, n in rows}


def get_summary(session: Session, *, actor: Actor, window_hours: int, now: datetime | None = None) -> Summary:
    """Conversations created in the last WINDOW_HOURS whole hours: counts by status, error rate, p95, tokens, cost."""
    require_read(actor, Permission.VIEW_HEALTH)
    since = window_start(now or utcnow(), window_hours)
    created, completed, failed, opted_out, p_tok, c_tok, cost = session.execute(_metric_rows(actor, since)).one()
    by_status = {"completed": int(completed), "failed": int(failed), "opted_out": int(opted_out),
                 **{s: 0 for s in OPEN}, **_open_counts(session, actor, since)}
    finished = int(completed) + int(failed)
    return Summary(window_hours=window_hours, since=since, conversations=int(created), by_status=by_status,
                   error_rate=(int(failed) / finished) if finished else None,
                   p95_response_ms=percentile(response_histogram(session, actor=actor, since=since), 0.95),
                   prompt_tokens=int(p_tok), completion_tokens=int(c_tok), cost_usd=float(cost))


def _period(session: Session, column: Any, days: bool) -> Any:
    if not days:
        return column
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("day", column)
    return func.strftime("%Y-%m-%d 00:00:00.000000", column)


def _as_datetime(value: Any) -> datetime:
    """SQLite hands back day buckets as text and hours without a zone; both are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def get_timeseries(session: Session, *, actor: Actor, window_hours: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per hour (windows up to a day) or per day: volume by status, error rate and p95 response time."""
    require_read(actor, Permission.VIEW_HEALTH)
    since = window_start(now or utcnow(), window_hours)
    days = window_hours > 48
    m, b = AgentMetric, AgentResponseBucket
    period = _period(session, m.hour, days).label("period")
    rows = session.execute(select(period, func.sum(m.created), func.sum(m.completed), func.sum(m.failed),
                                  func.sum(m.opted_out)).where(m.hour >= since, *shop_filter(actor, m.shop_id))
                           .group_by(literal_column("period")).order_by(literal_column("period")))
    out = {}
    for p, created, completed, failed, opted in rows:
        finished = int(completed) + int(failed)
        out[_as_datetime(p)] = {"period": _as_datetime(p), "created": int(created), "completed": int(completed),
                                "failed": int(failed), "opted_out": int(opted),
                                "error_rate": int(failed) / finished if finished else None, "p95_response_ms": None}
    bperiod = _period(session, b.hour, days).label("period")
    hist: dict[datetime, dict[int, int]] = defaultdict(dict)
    for p, bucket, n in session.execute(select(bperiod, b.bucket, func.sum(b.count)).where(
            b.hour >= since, *shop_filter(actor, b.shop_id)).group_by(literal_column("period"), b.bucket)):
        hist[_as_datetime(p)][int(bucket)] = int(n)
    for p, h in hist.items():
        if p in out:
            out[p]["p95_response_ms"] = percentile(h, 0.95)
    return [out[k] for k in sorted(out)]


def get_breakdown(session: Session, *, actor: Actor, window_hours: int, by: str, top: int = 8,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Volume, error rate and p95 per agent type or per shop (top N by volume, the rest grouped as 'other')."""
    require_read(actor, Permission.VIEW_HEALTH)
    since = window_start(now or utcnow(), window_hours)
    m, b = AgentMetric, AgentResponseBucket
    key_m, key_b = (m.agent_type, b.agent_type) if by == "agent_type" else (m.shop_id, b.shop_id)
    rows = session.execute(select(key_m, func.sum(m.created), func.sum(m.completed), func.sum(m.failed))
                           .where(m.hour >= since, *shop_filter(actor, m.shop_id)).group_by(key_m)
                           .order_by(func.sum(m.created).desc())).all()
    hists: dict[Any, dict[int, int]] = defaultdict(dict)
    for key, bucket, n in session.execute(select(key_b, b.bucket, func.sum(b.count)).where(
            b.hour >= since, *shop_filter(actor, b.shop_id)).group_by(key_b, b.bucket)):
        hists[key][int(bucket)] = int(n)
    names = _shop_names(session, [r[0] for r in rows]) if by == "shop" else {}
    out, rest = [], {"created": 0, "completed": 0, "failed": 0, "hist": defaultdict(int)}
    for i, (key, created, completed, failed) in enumerate(rows):
        if i < top:
            out.append(_breakdown_row(names.get(key, str(key)), int(created), int(completed), int(failed), hists[key]))
            continue
        rest["created"] += int(created)
        rest["completed"] += int(completed)
        rest["failed"] += int(failed)
        for bucket, n in hists[key].items():
            rest["hist"][bucket] += n
    if len(rows) > top:
        out.append(_breakdown_row(f"other ({len(rows) - top})", rest["created"], rest["completed"], rest["failed"],
                                  rest["hist"]))
    return out


def _breakdown_row(name: str, created: int, completed: int, failed: int, hist: dict[int, int]) -> dict[str, Any]:
    finished = completed + failed
    return {"name": name, "created": created, "completed": completed, "failed": failed,
            "error_rate": failed / finished if finished else None, "p95_response_ms": percentile(hist, 0.95)}


def _shop_names(session: Session, ids: list[int]) -> dict[int, str]:
    return {i: f"{name} (#{i})" for i, name in session.execute(select(Shop.id, Shop.name).where(Shop.id.in_(ids)))}


__all__ = ["WINDOWS", "Summary", "get_breakdown", "get_summary", "get_timeseries", "parse_window"]
