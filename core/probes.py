"""Probes: the health endpoints over HTTP (2 s timeout) and timed dashboard queries, stored as history.

Probe results are telemetry, like heartbeats: they are written without an audit record.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import requests
from sqlalchemy import Engine, insert, text

from core import rollups
from core.audit_anchor import anchor_head
from core.auth import system_actor
from core.config import mask_url
from core.db import read_session, write_bind
from core.models import HealthProbe, utcnow
from core.partitions import ensure_partitions
from core.queries import metrics
from core.rollups_daily import fold_current_hour, refresh_daily

PROBE_TIMEOUT_SECONDS = 2.0


def probe_url(url: str, session: requests.Session | None = None) -> dict:
    """GET URL once; ok means a 2xx answer within the timeout."""
    started = time.perf_counter()
    try:
        resp = (session or requests).get(url, timeout=PROBE_TIMEOUT_SECONDS)
        latency = (time.perf_counter() - started) * 1000
        return {"url": url, "ok": 200 <= resp.status_code < 300, "status_code": resp.status_code,
                "latency_ms": latency, "error": None if resp.ok else f"HTTP {resp.status_code}"}
    except requests.RequestException as exc:
        return {"url": url, "ok": False, "status_code": None, "latency_ms": None,
                "error": type(exc).__name__.replace("Error", " error").strip()}


def timed_queries(engine: Engine) -> list[float]:
    """Run the Agent Health page's main reads and return their durations (ms)."""
    actor, out = system_actor("probe"), []
    with read_session(engine) as s:
        for hours in (1, 24):
            started = time.perf_counter()
            metrics.get_summary(s, actor=actor, window_hours=hours)
            out.append((time.perf_counter() - started) * 1000)
    return out


def vacuum_fine_rows(engine: Engine) -> None:
    """PostgreSQL: VACUUM the two tables the folds empty every cycle. Until then a read still walks the index
    entries of every row the fold deleted (a 24-hour summary at 1M read 2,608 rows, 525 after a VACUUM);
    autovacuum would come by within a minute or so. Tables someone else holds are skipped this cycle. The emptied
    pages are kept (TRUNCATE false): truncating takes an exclusive lock that a read replica replays, cancelling or
    holding up the health reads routed there, every cycle."""
    bind = write_bind(engine)
    if bind.dialect.name != "postgresql":
        return
    with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (SKIP_LOCKED, TRUNCATE false) agent_metrics, agent_response_buckets"))


def run_once(engine: Engine, urls: Sequence[str]) -> list[dict]:
    """Probe every URL and time the queries; store both."""
    results = [probe_url(u) for u in urls]
    samples = timed_queries(engine)
    now = utcnow()
    with write_bind(engine).begin() as conn:
        if results:
            # Stored masked (house rule 10): a probed URL may carry a password or a token in its query.
            conn.execute(insert(HealthProbe), [{**r, "url": mask_url(r["url"]), "checked_at": now} for r in results])
        rollups.record_db_time(conn, source="probe", samples_ms=samples, at=now)
        # Only days a late completion changed, not the last three each cycle. The cycle's own clock, for the fold of
        # the current hour below too: at midnight a second clock folded the old day's last rows after its daily rows
        # were written, and they never reached them.
        refresh_daily(conn, stale_only=True, now=now)
        ensure_partitions(conn, now)  # next months' partitions exist long before their first row (PostgreSQL)
    # The current hour's rows per instance and bucket, folded too: a read of it then finds a row per type or shop
    # and the last cycle's completions (it read every instance's rows of the hour so far, which follow the traffic).
    with write_bind(engine).begin() as conn:
        fold_current_hour(conn, now=now)
    vacuum_fine_rows(engine)
    # Each cycle checkpoints the audit chain's head outside the database, so a rewind is caught against it.
    anchor_head(engine)
    return results
