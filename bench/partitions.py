"""Issue 11: monthly partitions. Migration 0011 on a populated database, retention's drop of a month against a
DELETE of the same month (the naive way, on the unpartitioned table), and the worker's claim before and after."""
from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

from sqlalchemy import text

from bench.common import pct, scratch_postgres, table, use_database

CLAIMS = 300
WARM_UP = 50


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=300_000)
    ap.add_argument("--days", type=int, default=90)
    args, _ = ap.parse_known_args(argv)
    from core.auth import system_actor
    from core.models import utcnow
    from core.retention import cutoff
    from core.seed.runner import seed

    with scratch_postgres(f"part_bench_{os.getpid()}") as url:
        engine = use_database(url)
        seed(actor=system_actor("bench"), engine=engine, size="load", conversations=args.conversations,
             days=args.days)
        _migrate(engine, "downgrade", "0010")  # the database as it stood before partitions, full of history
        now = utcnow()
        keep = _months_to_keep(args.days)
        before = cutoff(now, keep)
        claim_before = _claim_ms(engine)
        delete_ms, deleted = _delete_month(engine, before)
        migrate_s = _migrate(engine, "upgrade", "head")
        claim_after = _claim_ms(engine)
        check_ms, _ = _retention_ms(engine, keep, now, dry_run=True)
        drop_ms, dropped = _retention_ms(engine, keep, now)
        load = os.getloadavg()[0]
    assert dropped == deleted, f"retention dropped {dropped} conversations, the DELETE {deleted}"
    title = (f"Monthly partitions (PostgreSQL, {args.conversations:,} conversations over {args.days} days; "
             f"load average {load:.2f} on 2 cores)")
    return table(title, [
        ("migration 0011 on the populated database", f"{migrate_s:.1f} s", "< 300 s at 1M", "–"),
        (f"retention: drop the oldest month ({dropped:,} conversations), safety checks included", f"{drop_ms:,.0f} ms",
         "< 1 s", f"DELETE of the same month, unpartitioned: {delete_ms:,.0f} ms"),
        ("retention --dry-run: the safety checks alone (run just before)", f"{check_ms:,.0f} ms", "–", "–"),
        (f"claim of 10, p50 / p99 ({CLAIMS} claims), partitioned",
         f"{pct(claim_after, 0.5):.2f} / {pct(claim_after, 0.99):.2f} ms", "p99 within 1.5× unpartitioned",
         f"unpartitioned: {pct(claim_before, 0.5):.2f} / {pct(claim_before, 0.99):.2f} ms"),
    ])


def _months_to_keep(days: int) -> int:
    """Keep all but the oldest month the data spans (days back from now, whole months counted)."""
    from core.models import utcnow
    from core.partitions import month_start

    now = utcnow()
    first = month_start(now - timedelta(days=days))
    return (now.year - first.year) * 12 + now.month - first.month - 1


def _migrate(engine, verb: str, revision: str) -> float:  # noqa: ANN001 - an Engine
    from alembic import command

    from core.migrate import alembic_config

    cfg = alembic_config(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, revision)
    return time.perf_counter() - started


def _claim_ms(engine) -> list[float]:  # noqa: ANN001
    """The worker's claim statement, each in a transaction rolled back (the open work stays as it was)."""
    from core.models import utcnow
    from core.queries.settings import Scope
    from core.worker.store import claim_statement

    out = []
    with engine.connect() as conn:
        conn.execute(text("ANALYZE agent_conversations"))
        conn.commit()
        for n in range(WARM_UP + CLAIMS):
            stmt = claim_statement(worker_id="bench", limit=10, scope=Scope(), lease_seconds=60, now=utcnow())
            tx = conn.begin()
            started = time.perf_counter()
            conn.execute(stmt).all()
            if n >= WARM_UP:  # the first claims read pages from disk into the cache: not what a worker sees
                out.append((time.perf_counter() - started) * 1000)
            tx.rollback()
    return out


def _delete_month(engine, before) -> tuple[float, int]:  # noqa: ANN001
    """The naive retention: DELETE the old conversations (their messages follow by cascade); rolled back."""
    with engine.connect() as conn:
        tx = conn.begin()
        started = time.perf_counter()
        n = conn.execute(text("DELETE FROM agent_conversations WHERE created_at < :t"), {"t": before}).rowcount
        ms = (time.perf_counter() - started) * 1000
        tx.rollback()
    return ms, n


def _retention_ms(engine, keep: int, now, *, dry_run: bool = False) -> tuple[float, int]:  # noqa: ANN001
    from core.auth import system_actor
    from core.services.retention import apply_retention
    from core.uow import UnitOfWork

    started = time.perf_counter()
    result = apply_retention(actor=system_actor("bench"), uow=UnitOfWork(engine), keep_months=keep, now=now,
                             dry_run=dry_run)
    return (time.perf_counter() - started) * 1000, sum(m.conversations for m in result.months)
