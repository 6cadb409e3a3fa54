"""The checklist's success criteria, evaluated: measured value, threshold from config, pass / warn / fail."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.config import Settings, get_settings, mask_url
from core.models import AgentDbTiming, HealthProbe, WorkerHeartbeat, utcnow
from core.queries.metrics import Summary, window_bounds
from core.queries.rollup_reads import as_utc, hour_of
from core.queries.scope import require_read
from core.rollups import floor_hour, percentile

# A worker whose heartbeat is older than this is not alive (the API's readiness uses the same number).
WORKER_ALIVE_SECONDS = 30
# Within this share of the threshold a criterion warns before it fails.
WARN_AT = 0.8


@dataclass(frozen=True)
class Criterion:
    key: str
    label: str
    value: float | None
    threshold: float
    unit: str
    state: str  # pass | warn | fail | no data

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "value": self.value, "threshold": self.threshold, "unit": self.unit,
                "state": self.state}


def judge(value: float | None, threshold: float) -> str:
    """pass below WARN_AT of THRESHOLD, warn up to it, fail at or above it (the tiles' help says so)."""
    if value is None:
        return "no data"
    if value >= threshold:
        return "fail"
    return "warn" if value >= WARN_AT * threshold else "pass"


def db_query_p95(session: Session, *, since: datetime) -> float | None:
    """p95 of recorded database timings (the worker's writes and the console's probe queries)."""
    t = AgentDbTiming
    rows = session.execute(select(t.bucket, func.sum(t.count)).where(t.hour >= since).group_by(t.bucket))
    return percentile({int(b): int(n) for b, n in rows}, 0.95)


def list_workers(session: Session, *, actor: Actor, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every worker seen in the last day, newest first, with whether it is alive."""
    require_read(actor, Permission.VIEW_HEALTH)
    now = now or utcnow()
    rows = session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at >= now - timedelta(days=1))
                           .order_by(WorkerHeartbeat.last_seen_at.desc())).all()
    return [{"worker": w.id, "host": w.host, "pid": w.pid, "alive": _alive(w, now), "last_seen": w.last_seen_at,
             "age_s": (now - w.last_seen_at).total_seconds(), "in_flight": w.in_flight, "processed": w.processed,
             "settings_version": w.settings_version, "breaker": w.breaker_state, "rss_mb": round(w.rss_mb, 1),
             "rss_growth_mb": round(w.rss_mb - (w.rss_start_mb or w.rss_mb), 1), "cpu_percent": round(w.cpu_percent, 1),
             "stopped": w.stopped_at is not None, "env_enabled": w.env_enabled} for w in rows]


def _alive(w: WorkerHeartbeat, now: datetime) -> bool:
    return w.stopped_at is None and w.last_seen_at >= now - timedelta(seconds=WORKER_ALIVE_SECONDS)


def live_worker_conditions(now: datetime) -> list[Any]:
    """SQL conditions for workers alive at NOW: not stopped, heartbeat within WORKER_ALIVE_SECONDS (one rule
    for the pages, the readiness check, the rollback triggers and /metrics)."""
    return [WorkerHeartbeat.stopped_at.is_(None),
            WorkerHeartbeat.last_seen_at >= now - timedelta(seconds=WORKER_ALIVE_SECONDS)]


def evaluate_criteria(session: Session, *, actor: Actor, summary: Summary, workers: list[dict[str, Any]],
                      settings: Settings | None = None) -> list[Criterion]:
    """The success-criteria tiles for SUMMARY's window."""
    s = settings or get_settings()
    alive = [w for w in workers if w["alive"]]
    memory = max((w["rss_growth_mb"] for w in alive), default=None)
    cpu = max((w["cpu_percent"] for w in alive), default=None)
    db_p95 = db_query_p95(session, since=floor_hour(summary.since))  # timings are kept per hour
    error_pct = summary.error_rate * 100 if summary.error_rate is not None else None
    return [
        Criterion("response_p95", "Agent response time p95", summary.p95_response_ms, s.sc_response_p95_ms, "ms",
                  judge(summary.p95_response_ms, s.sc_response_p95_ms)),
        Criterion("db_query_p95", "Database query time p95", db_p95, s.sc_db_query_p95_ms, "ms",
                  judge(db_p95, s.sc_db_query_p95_ms)),
        Criterion("error_rate", "Error rate", error_pct, s.sc_error_rate * 100, "%", judge(error_pct, s.sc_error_rate * 100)),
        Criterion("memory", "Worker memory growth (now)", memory, s.sc_memory_mb, "MB", judge(memory, s.sc_memory_mb)),
        Criterion("cpu", "Worker CPU (now)", cpu, s.sc_cpu_percent, "%", judge(cpu, s.sc_cpu_percent)),
    ]


def probe_history(session: Session, *, actor: Actor, window_hours: int, now: datetime | None = None
                  ) -> list[dict[str, Any]]:
    """Per probed URL over the window (to the minute): the latest state, the uptime, and latency points (every
    probe for windows up to a day, hourly averages beyond, so a month is hundreds of points, not tens of thousands)."""
    require_read(actor, Permission.VIEW_HEALTH)
    since, until = window_bounds(window_hours, now)
    p = HealthProbe
    totals = session.execute(select(p.url, func.count(), func.count().filter(p.ok.is_(True)), func.max(p.checked_at),
                                    func.min(p.checked_at)).where(p.checked_at >= since).group_by(p.url)
                             .order_by(p.url)).all()
    out = []
    for url, probes, up, last_at, first_at in totals:
        last = session.execute(select(p.ok, p.status_code, p.error).where(p.url == url, p.checked_at == last_at)
                               .limit(1)).one()
        # Masked here, for every reader: rows stored before URLs were masked at the source (core.probes) keep theirs.
        out.append({"url": mask_url(url), "ok": last.ok, "status_code": last.status_code, "error": last.error,
                    "last_checked": last_at, "first_checked": first_at, "probes": probes, "since": since,
                    "until": until, "uptime_percent": 100 * up / probes,
                    "points": _probe_points(session, url, since, hourly=window_hours > 24)})
    return out


def _probe_points(session: Session, url: str, since: datetime, *, hourly: bool) -> list[dict[str, Any]]:
    p = HealthProbe
    if not hourly:
        rows = session.execute(select(p.checked_at, p.latency_ms, p.ok).where(p.url == url, p.checked_at >= since)
                               .order_by(p.checked_at))
        return [{"checked_at": t, "latency_ms": ms, "ok": ok} for t, ms, ok in rows]
    hour = hour_of(session, p.checked_at).label("h")
    rows = session.execute(select(hour, func.avg(p.latency_ms), func.count().filter(p.ok.is_(False)))
                           .where(p.url == url, p.checked_at >= since).group_by(literal_column("h"))
                           .order_by(literal_column("h")))
    return [{"checked_at": as_utc(h), "latency_ms": ms, "ok": failed == 0} for h, ms, failed in rows]
