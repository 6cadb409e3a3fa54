"""The post-deployment windows and success criteria, from the hourly rollups since the release was deployed.

Windows count from the run's deployment time: immediate 0-30 min, short-term 1-4 h, extended 24-48 h. Rollups are
kept per hour of creation, so a window covers the whole hours it touches (the evidence names them). A window that
has not opened yet warns and says when it opens; one still open is judged on what it holds so far."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, waiting, warned
from core.db import read_session, snapshot_session
from core.models import (
    AgentMetric, AgentMetricHourlyByType, AgentResponseBucket, AgentResponseHourlyByType, WorkerHeartbeat, utcnow,
)
from core.queries.health import db_query_p95, judge, live_worker_conditions
from core.rollups import floor_hour, percentile
from core.rollups_compact import joined_counts, sum_stored

WINDOWS = {"immediate": (timedelta(0), timedelta(minutes=30)), "short_term": (timedelta(hours=1), timedelta(hours=4)),
           "extended": (timedelta(hours=24), timedelta(hours=48))}


@dataclass(frozen=True)
class Figures:
    since: datetime
    until: datetime
    created: int
    completed: int
    failed: int
    p95_ms: float | None
    db_p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        done = self.completed + self.failed
        return self.failed / done if done else None

    def evidence(self) -> dict[str, Any]:
        rate = self.error_rate
        return {"hours": f"{self.since:%Y-%m-%d %H:%M}–{self.until:%Y-%m-%d %H:%M} UTC", "created": self.created,
                "completed": self.completed, "failed": self.failed, "p95_ms": _round(self.p95_ms),
                "error_rate_percent": None if rate is None else round(rate * 100, 3), "db_p95_ms": _round(self.db_p95_ms)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def figures_between(ctx: CheckContext, since: datetime, until: datetime) -> Figures:
    """Rollup sums and p95s over the whole hours from SINCE's hour up to UNTIL."""
    start, m, b = floor_hour(since), AgentMetric, AgentResponseBucket
    with read_session(ctx.engine) as session, snapshot_session(session) as s:  # the prober folds meanwhile
        created = completed = failed_n = 0
        for t in (m, AgentMetricHourlyByType):  # rows not folded yet, and closed hours folded by type
            c, d, f = s.execute(select(
                func.coalesce(func.sum(t.created), 0), func.coalesce(func.sum(t.completed), 0),
                func.coalesce(func.sum(t.failed), 0)).where(t.hour >= start, t.hour < until)).one()
            created, completed, failed_n = created + c, completed + d, failed_n + f
        hist: Counter[int] = Counter()
        for bucket, n in s.execute(select(b.bucket, func.sum(b.count)).where(b.hour >= start, b.hour < until)
                                   .group_by(b.bucket)):
            hist[int(bucket)] += int(n)
        # Closed hours live in the compact rows once folded (the prober folds every cycle): read both.
        c = AgentResponseHourlyByType
        hist.update(sum_stored(s.scalar(select(joined_counts(s, c.counts)).where(c.hour >= start, c.hour < until))))
        db_p95 = db_query_p95(s, since=start)
    return Figures(start, until, int(created), int(completed), int(failed_n), percentile(hist, 0.95), db_p95)


def window(ctx: CheckContext, name: str) -> Figures | Outcome:
    """The figures of window NAME, or the warning that says why there are none yet."""
    if ctx.deployed_at is None:
        return waiting(f"{name.replace('_', '-')} window", "the release is not marked deployed yet "
                      "(`python -m core check deployed`, or the page's button)")
    begin, end = (ctx.deployed_at + offset for offset in WINDOWS[name])
    now = utcnow()
    if now < begin:
        return waiting(f"{name.replace('_', '-')} window", f"opens at {begin:%Y-%m-%d %H:%M} UTC")
    return figures_between(ctx, begin, min(now, end) + timedelta(seconds=1))


def _processing(ctx: CheckContext, name: str, minimum: int = 1) -> Outcome:
    fig = window(ctx, name)
    if isinstance(fig, Outcome):
        return fig
    limit, rate = ctx.settings.sc_window_error_rate, fig.error_rate
    if fig.completed < minimum:
        return failed("conversations completed", fig.evidence(), f"{fig.completed} completed, fewer than {minimum}")
    return verdict(rate is not None and rate < limit, "conversations completed", fig.evidence(),
                   f"{fig.completed} completed, error rate {rate:.2%} (limit {limit:.0%})")


def check_short_term_processing(ctx: CheckContext) -> Outcome:
    """Short-term window: conversations complete, with an error rate under the window limit."""
    return _processing(ctx, "short_term")


def check_extended_volume(ctx: CheckContext) -> Outcome:
    """Extended window: at least CHECKLIST_MIN_VOLUME conversations, error rate under the limit."""
    return _processing(ctx, "extended", max(1, ctx.settings.checklist_min_volume))


def check_short_term_response(ctx: CheckContext) -> Outcome:
    """Short-term window: agent response p95 within SC_RESPONSE_P95_MS."""
    fig = window(ctx, "short_term")
    if isinstance(fig, Outcome):
        return fig
    return _judged("response time p95 (ms)", fig.p95_ms, ctx.settings.sc_response_p95_ms, fig.evidence())


def check_short_term_errors(ctx: CheckContext) -> Outcome:
    """Short-term window: error rate below 1 % (SC_WINDOW_ERROR_RATE)."""
    fig = window(ctx, "short_term")
    if isinstance(fig, Outcome):
        return fig
    rate = None if fig.error_rate is None else fig.error_rate * 100
    return _judged("error rate (%)", rate, ctx.settings.sc_window_error_rate * 100, fig.evidence())


def check_extended_db(ctx: CheckContext) -> Outcome:
    """Extended window: database query p95 within SC_DB_QUERY_P95_MS."""
    fig = window(ctx, "extended")
    if isinstance(fig, Outcome):
        return fig
    return _judged("database query p95 (ms)", fig.db_p95_ms, ctx.settings.sc_db_query_p95_ms, fig.evidence())


def _judged(measured: str, value: float | None, limit: float, evidence: dict[str, Any]) -> Outcome:
    state = judge(value, limit)
    detail = f"{'no data' if value is None else f'{value:.2f}'} against a limit of {limit:g}"
    if state == "no data":
        return warned(measured, evidence, "no data in the window yet")
    return {"pass": passed, "warn": warned, "fail": failed}[state](measured, {**evidence, "value": value}, detail)


def _workers(ctx: CheckContext) -> list[WorkerHeartbeat]:
    with read_session(ctx.engine) as s:
        return list(s.scalars(select(WorkerHeartbeat).where(*live_worker_conditions(utcnow()))))


def check_resources(ctx: CheckContext) -> Outcome:
    """Live workers' memory growth over their start and CPU within the success criteria."""
    workers = _workers(ctx)
    if not workers:
        return warned("worker memory and CPU", None, "no live worker to measure")
    growth = max(w.rss_mb - (w.rss_start_mb or w.rss_mb) for w in workers)
    cpu = max(w.cpu_percent for w in workers)
    s = ctx.settings
    value = {"memory_growth_mb": round(growth, 1), "cpu_percent": round(cpu, 1), "workers": len(workers)}
    ok = growth < s.sc_memory_mb and cpu < s.sc_cpu_percent
    return verdict(ok, "worker memory and CPU", value, f"+{growth:.1f} MB (limit {s.sc_memory_mb:g}), CPU "
                                                        f"{cpu:.1f} % (limit {s.sc_cpu_percent:g})")


def check_memory_growth(ctx: CheckContext) -> Outcome:
    """No memory growth trend: every live worker's memory over its start stays within SC_MEMORY_MB."""
    workers = _workers(ctx)
    if not workers:
        return warned("worker memory growth", None, "no live worker to measure")
    growth = {w.id: round(w.rss_mb - (w.rss_start_mb or w.rss_mb), 1) for w in workers}
    worst = max(growth.values())
    return _judged("worker memory growth (MB)", worst, ctx.settings.sc_memory_mb, {"per_worker": growth})


def _since_deployment(ctx: CheckContext) -> Figures:
    now = utcnow()
    return figures_between(ctx, ctx.deployed_at or now - timedelta(hours=24), now + timedelta(seconds=1))


def check_sc_response(ctx: CheckContext) -> Outcome:
    """Success criterion: agent response time p95 since deployment (or the last 24 h)."""
    fig = _since_deployment(ctx)
    return _judged("response time p95 (ms)", fig.p95_ms, ctx.settings.sc_response_p95_ms, fig.evidence())


def check_sc_db_query(ctx: CheckContext) -> Outcome:
    """Success criterion: database query time p95 since deployment (or the last 24 h)."""
    fig = _since_deployment(ctx)
    return _judged("database query p95 (ms)", fig.db_p95_ms, ctx.settings.sc_db_query_p95_ms, fig.evidence())


def check_sc_error_rate(ctx: CheckContext) -> Outcome:
    """Success criterion: error rate since deployment (or the last 24 h) below SC_ERROR_RATE."""
    fig = _since_deployment(ctx)
    rate = None if fig.error_rate is None else fig.error_rate * 100
    return _judged("error rate (%)", rate, ctx.settings.sc_error_rate * 100, fig.evidence())


def check_sc_memory(ctx: CheckContext) -> Outcome:
    """Success criterion: additional memory of the workers below SC_MEMORY_MB."""
    return check_memory_growth(ctx)


def check_sc_cpu(ctx: CheckContext) -> Outcome:
    """Success criterion: worker CPU below SC_CPU_PERCENT."""
    workers = _workers(ctx)
    if not workers:
        return warned("worker CPU (%)", None, "no live worker to measure")
    cpu = max(w.cpu_percent for w in workers)
    return _judged("worker CPU (%)", cpu, ctx.settings.sc_cpu_percent, {"workers": len(workers)})
