"""The metrics a rule can watch. Each reads aggregates only: the hourly rollups, the database-timing histogram,
worker heartbeats, probe history and audited refusals (indexed by action and time), never raw conversations.

Conversation figures come from rollups keyed by the hour a conversation was created, so a window of M minutes
reads the whole hours it touches: the figure may include up to an hour more than M minutes, never less."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import (
    AgentDbTiming, AgentMetric, AgentMetricDaily, AgentMetricHourlyByShopType, AgentMetricHourlyByType,
    AgentResponseBucket, AgentResponseHourlyByShopType,
    AgentResponseHourlyByType, AuditRecord, HealthProbe, WorkerHeartbeat,
)
from core.queries.controls import DATA_ACCESS_ACTIONS
from core.queries.health import live_worker_conditions
from core.rollups import floor_hour, percentile
from core.rollups_compact import joined_counts, sum_stored, sum_stored_by_key
from core.rollups_daily import floor_day


@dataclass(frozen=True)
class Scope:
    window_minutes: int
    agent_type: str | None = None
    shop_id: int | None = None


@dataclass(frozen=True)
class Series:
    value: float | None  # None: no data
    labels: dict[str, str] = field(default_factory=dict)  # extra labels naming this series (e.g. the probed URL)


Reader = Callable[[Session, Scope, datetime], list[Series]]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    read: Reader
    scoped: bool = False  # takes an agent-type / shop scope
    conversations: bool = False  # the conversations behind it can be listed (a link from the alert)
    signed: bool = False  # may be below zero (a difference); counts, rates and times never are


def window_start(scope: Scope, now: datetime) -> datetime:
    """Where a rule's window evaluated at NOW starts: on the hour before NOW − window (the rollups' whole hours),
    so a 60-minute window reads up to 119 minutes; the alert's link to its conversations starts here too."""
    return floor_hour(now - timedelta(minutes=scope.window_minutes))


def _scoped(model: Any, scope: Scope) -> list[Any]:
    conds = []
    if scope.agent_type:
        conds.append(model.agent_type == scope.agent_type)
    if scope.shop_id is not None:
        conds.append(model.shop_id == scope.shop_id)
    return conds


def _cached(session: Session, key: tuple, load: Callable[[], Any]) -> Any:
    """One read per cycle for what many rules share (the cycle's session lives for one evaluation)."""
    cache = session.info.setdefault("alert_metric_cache", {})
    if key not in cache:
        cache[key] = load()
    return cache[key]


SUMS = ("created", "completed", "failed", "opted_out")


def _sum_columns(model: Any) -> list[Any]:
    return [func.coalesce(func.sum(getattr(model, c)), 0) for c in SUMS]


def _add(rows: Any) -> dict[str, int]:
    total = dict.fromkeys(SUMS, 0)
    for row in rows:
        for name, n in zip(SUMS, row):
            total[name] += int(n)
    return total


def _sums(session: Session, scope: Scope, now: datetime) -> dict[str, int]:
    """Created/completed/failed/opted-out in the window: the agent_metrics rows not folded yet plus the compact sums
    of closed hours; rules without a shop share one read grouped by type."""
    since = window_start(scope, now)
    if scope.shop_id is not None:
        return _add([session.execute(select(*_sum_columns(m)).where(m.hour >= since, *_scoped(m, scope))).one()
                     for m in (AgentMetric, AgentMetricHourlyByShopType)])

    def load() -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for m in (AgentMetric, AgentMetricHourlyByType):
            for t, *rest in session.execute(select(m.agent_type, *_sum_columns(m)).where(m.hour >= since)
                                            .group_by(m.agent_type)):
                out[t] = [a + int(b) for a, b in zip(out.get(t, [0] * len(SUMS)), rest)]
        return out
    by_type = _cached(session, ("sums", since), load)
    return _add([v for t, v in by_type.items() if scope.agent_type in (None, t)])


def response_p95(session: Session, scope: Scope, now: datetime) -> list[Series]:
    """p95 of the fine histogram rows (the current hour, late completions) plus the compact rows of closed hours."""
    b, since = AgentResponseBucket, window_start(scope, now)
    hist: Counter[int] = Counter()
    if scope.shop_id is not None:
        c = AgentResponseHourlyByShopType
        for bucket, n in session.execute(select(b.bucket, func.sum(b.count)).where(b.hour >= since, *_scoped(b, scope))
                                         .group_by(b.bucket)):
            hist[int(bucket)] += int(n)
        hist.update(sum_stored(session.scalar(select(joined_counts(session, c.counts))
                                              .where(c.hour >= since, *_scoped(c, scope)))))
        return [Series(percentile(hist, 0.95))]
    for agent_type, counts in _by_type_histograms(session, since):
        if scope.agent_type in (None, agent_type):
            hist.update(counts)
    return [Series(percentile(hist, 0.95))]


def _by_type_histograms(session: Session, since: datetime) -> list[tuple[str, Counter[int]]]:
    """Per agent type, the response-time histogram since SINCE (fine and compact rows), read once per cycle."""
    def load() -> list[tuple[str, Counter[int]]]:
        b, c, out = AgentResponseBucket, AgentResponseHourlyByType, {}
        for agent_type, bucket, n in session.execute(select(b.agent_type, b.bucket, func.sum(b.count))
                                                     .where(b.hour >= since).group_by(b.agent_type, b.bucket)):
            out.setdefault(agent_type, Counter())[int(bucket)] += int(n)
        stored = sum_stored_by_key(session.execute(select(c.agent_type, joined_counts(session, c.counts))
                                                   .where(c.hour >= since).group_by(c.agent_type)))
        for agent_type, counts in stored.items():
            out.setdefault(agent_type, Counter()).update(counts)
        return list(out.items())
    return _cached(session, ("histograms", since), load)


def db_query_p95(session: Session, scope: Scope, now: datetime) -> list[Series]:
    t = AgentDbTiming
    rows = session.execute(select(t.bucket, func.sum(t.count)).where(t.hour >= window_start(scope, now))
                           .group_by(t.bucket))
    return [Series(percentile({int(k): int(n) for k, n in rows}, 0.95))]


def error_rate(session: Session, scope: Scope, now: datetime) -> list[Series]:
    s = _sums(session, scope, now)
    done = s["completed"] + s["failed"]
    return [Series(s["failed"] / done if done else None)]  # a share, like SC_ERROR_RATE


def failed_conversations(session: Session, scope: Scope, now: datetime) -> list[Series]:
    return [Series(float(_sums(session, scope, now)["failed"]))]


def opt_out_over_baseline(session: Session, scope: Scope, now: datetime) -> list[Series]:
    """Opt-out rate of the window minus that of the 7 whole days before today (daily rollups), in points."""
    d, today = AgentMetricDaily, floor_day(now)
    conds = [d.day >= today - timedelta(days=7), d.day < today]
    if scope.shop_id is not None:
        base = _add([session.execute(select(*_sum_columns(d)).where(*conds, *_scoped(d, scope))).one()])
    else:
        by_type = _cached(session, ("baseline", today), lambda: {t: rest for t, *rest in session.execute(
            select(d.agent_type, *_sum_columns(d)).where(*conds).group_by(d.agent_type))})
        base = _add([v for t, v in by_type.items() if scope.agent_type in (None, t)])
    current = _sums(session, scope, now)
    if not current["created"] or not base["created"]:
        return [Series(None)]
    return [Series(100 * current["opted_out"] / current["created"] - 100 * base["opted_out"] / base["created"])]


def _live_workers(session: Session, now: datetime) -> dict[str, Any]:
    """The live workers' largest memory growth, memory and CPU, and how many have an open breaker: one read."""
    w = WorkerHeartbeat

    def load() -> dict[str, Any]:
        row = session.execute(select(func.max(w.rss_mb - w.rss_start_mb), func.max(w.rss_mb), func.max(w.cpu_percent),
                                     func.count().filter(w.breaker_state == "open"))
                              .where(*live_worker_conditions(now))).one()
        return dict(zip(("growth", "rss", "cpu", "open"), row))
    return _cached(session, ("workers", now), load)


def _live_max(name: str) -> Reader:
    def read(session: Session, scope: Scope, now: datetime) -> list[Series]:
        value = _live_workers(session, now)[name]
        return [Series(None if value is None else float(value))]
    return read


def heartbeat_age(session: Session, scope: Scope, now: datetime) -> list[Series]:
    """Seconds since the newest heartbeat of a worker that has not stopped cleanly (no such worker: no data)."""
    w = WorkerHeartbeat
    last = session.scalar(select(func.max(w.last_seen_at)).where(w.stopped_at.is_(None),
                                                                 w.last_seen_at >= now - timedelta(days=1)))
    if last is None:
        return [Series(None)]
    from core.queries.rollup_reads import as_utc

    return [Series(max(0.0, (now - as_utc(last)).total_seconds()))]


def breaker_open(session: Session, scope: Scope, now: datetime) -> list[Series]:
    """Live workers whose model breaker is open (the rule's pending period says for how long)."""
    return [Series(float(_live_workers(session, now)["open"] or 0))]


def unauthorized(session: Session, scope: Scope, now: datetime) -> list[Series]:
    """Audited refusals of client-data reads outside one's scope in the window (not pages opened by mistake)."""
    a = AuditRecord
    n = session.scalar(select(func.count()).where(a.outcome == "refused", a.action.in_(DATA_ACCESS_ACTIONS),
                                                  a.created_at >= now - timedelta(minutes=scope.window_minutes)))
    return [Series(float(n or 0))]


def probe_failures(session: Session, scope: Scope, now: datetime, *, depth: int = 10) -> list[Series]:
    """Per probed URL: how many of its latest probes failed in a row."""
    p = HealthProbe
    urls = session.scalars(select(p.url).where(p.checked_at >= now - timedelta(minutes=scope.window_minutes))
                           .distinct()).all()
    out = []
    for url in sorted(urls):
        oks = session.scalars(select(p.ok).where(p.url == url).order_by(p.checked_at.desc()).limit(depth)).all()
        run = next((i for i, ok in enumerate(oks) if ok), len(oks))
        out.append(Series(float(run), {"url": url}))
    return out


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("response_p95_ms", "Agent response time p95", "ms", response_p95, scoped=True, conversations=True),
    Metric("db_query_p95_ms", "Database query time p95", "ms", db_query_p95),
    Metric("error_rate", "Error rate (share of finished conversations)", "", error_rate, scoped=True, conversations=True),
    Metric("failed_conversations", "Failed conversations", "", failed_conversations, scoped=True, conversations=True),
    Metric("opt_out_over_baseline_pp", "Opt-out rate above its 7-day baseline", "pp", opt_out_over_baseline,
           scoped=True, conversations=True, signed=True),
    Metric("worker_memory_growth_mb", "Worker memory growth", "MB",
           _live_max("growth"), signed=True),
    Metric("worker_memory_mb", "Worker memory", "MB", _live_max("rss")),
    Metric("worker_cpu_percent", "Worker CPU", "%", _live_max("cpu")),
    Metric("worker_heartbeat_age_s", "Seconds since the last worker heartbeat", "s", heartbeat_age),
    Metric("breaker_open_workers", "Workers with an open model breaker", "", breaker_open),
    Metric("unauthorized_access", "Unauthorized client-data access attempts", "", unauthorized),
    Metric("probe_failures_in_row", "Failed health probes in a row", "", probe_failures),
)}
