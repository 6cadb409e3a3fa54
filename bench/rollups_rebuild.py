"""Issue 11: `rollups rebuild` and the fold of closed hours, set-based in the database. The rebuild at 100k and 1M
conversations, one day's fold beside the fold it replaced (rows merged in Python, multi-VALUES inserts) on the same
fine rows, and the probe's daily refresh of only the days that changed beside recomputing the last three.

    python -m bench rollups_rebuild [--small-db NAME]
"""
from __future__ import annotations

import argparse
import os
import time
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from bench.common import loaded_postgres, table, use_database

# One day of fine rows, as the worker leaves them (hour × instance × bucket), made from the raw rows of that day.
FINE_DAY_SQL = (
    "INSERT INTO agent_response_buckets (hour, agent_instance_id, bucket, shop_id, agent_type, count) "
    "SELECT date_trunc('hour', created_at, 'UTC'), agent_instance_id, "
    "floor(ln(greatest(response_time_ms, 1)) / ln(1.05))::int, shop_id, agent_type, count(*) "
    "FROM agent_conversations WHERE status = 'completed' AND response_time_ms IS NOT NULL "
    "AND created_at >= :a AND created_at < :b GROUP BY 1, 2, 3, 4, 5")


def _rebuild(url: str) -> tuple[float, int]:
    from core import rollups
    from core.uow import UnitOfWork

    engine = use_database(url)
    started = time.perf_counter()
    with UnitOfWork(engine) as uow:
        rows = rollups.rebuild(uow.session)
        uow.commit()
    return time.perf_counter() - started, rows


def _fold_day(url: str, fold: Any) -> tuple[float, int]:
    """FOLD (set-based or the Python peer) over one day of fine rows, in a transaction rolled back afterwards."""
    from core.db import write_bind
    from core.models import utcnow
    from core.rollups_compact import FOLDS
    from core.rollups_daily import floor_day

    engine = use_database(url)
    day = floor_day(utcnow()) - timedelta(days=2)
    with write_bind(engine).connect() as conn, conn.begin() as tx:
        for model, _ in FOLDS:  # the day's compact rows go; its fine rows come back, as before a fold
            conn.execute(model.__table__.delete().where(model.hour >= day, model.hour < day + timedelta(days=1)))
        n = conn.execute(text(FINE_DAY_SQL), {"a": day, "b": day + timedelta(days=1)}).rowcount
        started = time.perf_counter()
        fold(conn, day + timedelta(days=1))
        seconds = time.perf_counter() - started
        tx.rollback()
    return seconds, n


def _set_based(conn: Any, before: Any) -> None:
    from core.rollups_compact import fold_closed_hours

    fold_closed_hours(conn, before=before)


def _python_fold(conn: Any, before: Any) -> None:
    """The fold before this change: rows back to Python, merged there, written as multi-VALUES upserts."""
    from sqlalchemy.dialects import postgresql

    from core.models import AgentResponseBucket
    from core.rollups_compact import FOLDS, decode, encode

    b = AgentResponseBucket.__table__
    rows = conn.execute(b.delete().where(b.c.hour < before).returning(
        b.c.hour, b.c.shop_id, b.c.agent_type, b.c.bucket, b.c.count)).all()
    for model, keys in FOLDS:
        adds: dict[tuple, Counter[int]] = defaultdict(Counter)
        for r in rows:
            adds[(r.hour, *(getattr(r, k) for k in keys))][int(r.bucket)] += int(r.count)
        t = model.__table__
        existing = {(row.hour, *(getattr(row, k) for k in keys)): row.counts for row in conn.execute(
            t.select().where(t.c.hour >= before - timedelta(days=1), t.c.hour < before))}
        merged = [{"hour": key[0], **dict(zip(keys, key[1:])), "counts": encode(Counter(decode(existing.get(key))) + a)}
                  for key, a in adds.items()]
        for i in range(0, len(merged), 2000):
            stmt = postgresql.insert(model).values(merged[i:i + 2000])
            conn.execute(stmt.on_conflict_do_update(index_elements=["hour", *keys],
                                                    set_={"counts": stmt.excluded.counts}))


def main(argv: list[str] | None = None) -> str:
    from bench.health_queries import SMALL_DB, small_database

    ap = argparse.ArgumentParser()
    ap.add_argument("--small-db", default=SMALL_DB)
    args, _ = ap.parse_known_args(argv)
    big, small = loaded_postgres(), small_database(args.small_db)
    rows = []
    # Steady state first: a rebuild leaves every hour's agent_metrics rows dead until autovacuum has passed.
    load = os.getloadavg()[0]
    stale, full = _probe_refresh(big, True), _probe_refresh(big, False)
    rows.append(("the probe's daily refresh at 1M, no late completion (median of 5)",
                 f"{stale:.1f} ms (load {load:.1f})", "–", f"the last three days recomputed every cycle: {full:,.0f} ms ({full / stale:,.0f}× slower)"))
    for label, url in (("100k", small), ("1M", big)):
        load = os.getloadavg()[0]
        seconds, written = _rebuild(url)
        rows.append((f"`rollups rebuild` (everything) at {label}",
                     f"{seconds:.1f} s ({written:,} rows; load {load:.1f})", "seconds to tens of seconds",
                     "335–578 s at 1M before (last session, Python fold)"))
    load = os.getloadavg()[0]
    ours, n = _fold_day(big, _set_based)
    theirs, _ = _fold_day(big, _python_fold)
    rows.append((f"fold of one day's fine rows at 1M ({n:,} rows)", f"{ours * 1000:,.0f} ms (load {load:.1f})", "–",
                 f"merged in Python, multi-VALUES upserts: {theirs * 1000:,.0f} ms ({theirs / ours:.1f}× slower)"))
    return table("Rollups rebuild and fold (PostgreSQL)", rows)


def _probe_refresh(url: str, stale_only: bool) -> float:
    """Median ms of the probe's refresh_daily, each in a transaction rolled back."""
    import statistics

    from core.db import write_bind
    from core.rollups_daily import refresh_daily

    engine, times = use_database(url), []
    for _ in range(5):
        with write_bind(engine).connect() as conn, conn.begin() as tx:
            started = time.perf_counter()
            refresh_daily(conn, stale_only=stale_only)
            times.append((time.perf_counter() - started) * 1000)
            tx.rollback()
    return statistics.median(times)
