"""Issues 2 and 11: `seed --test-data load` into PostgreSQL, phase by phase: rows generated inside PostgreSQL
(the path from 100,000 conversations), indexes and constraints rebuilt, rollups; beside it, in the same run, the
client-side COPY path (what loads smaller counts) and the naive ORM insert, as rows/s.

    python -m bench seed_load [--conversations 1000000] [--peer-conversations 100000] [--keep-as NAME]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from unittest import mock

from bench.common import scratch_postgres, table, use_database


def _timed_seed(url: str, conversations: int) -> tuple[object, dict[str, float]]:
    """Seed CONVERSATIONS into URL; returns the report and the seconds of each phase, from the progress lines."""
    from core.auth import system_actor
    from core.seed.runner import seed

    marks: list[tuple[float, str]] = []
    started = time.perf_counter()
    report = seed(actor=system_actor("bench"), engine=use_database(url), size="load", conversations=conversations,
                  progress=lambda m: marks.append((time.perf_counter(), m)))
    ended = time.perf_counter()
    first = next((t for t, m in marks if m.startswith("building")), None)
    rollup = next(t for t, m in marks if m == "rolling up")
    vacuum = next(t for t, m in marks if m == "vacuuming")
    data_end = first or rollup
    return report, {"data": data_end - started, "indexes": rollup - data_end, "rollups": vacuum - rollup,
                    "vacuum": ended - vacuum, "total": ended - started}


def _copy_path(url: str, conversations: int) -> tuple[object, dict[str, float]]:
    """The same seed forced through the client-side COPY path."""
    from core.seed import sql_load

    with mock.patch.object(sql_load, "IN_DATABASE_FROM", conversations + 1):
        return _timed_seed(url, conversations)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1_000_000)
    ap.add_argument("--peer-conversations", type=int, default=100_000)
    ap.add_argument("--keep-as", help="keep the database seeded by our path under this name (e.g. for "
                                      "`health_queries --huge-db NAME` at 10M)")
    args, _ = ap.parse_known_args(argv)
    import os

    runs: dict[str, tuple[object, dict[str, float]]] = {}
    for name, fn, n in (("ours", _timed_seed, args.conversations), ("copy", _copy_path, args.peer_conversations)):
        keep = name == "ours" and bool(args.keep_as)
        with scratch_postgres(args.keep_as if keep else None, keep=keep) as url:
            runs[name] = fn(url, n)
            if name == "copy":
                naive = _naive_insert_rate(use_database(url), 5000)
    report, t = runs["ours"]
    peer, pt = runs["copy"]
    rate: Callable[[object, float], float] = lambda r, s: (r.conversations + r.messages) / s  # noqa: E731
    title = (f"Load data (PostgreSQL, {report.conversations:,} conversations, {report.messages:,} messages; "
             f"2 cores, load average {os.getloadavg()[0]:.1f})")
    return table(title, [
        ("wall time, all phases", f"{t['total']:.0f} s", "≤ 600 s at 10M; < 300 s at 1M", "–"),
        ("rows generated inside PostgreSQL (one transaction)", f"{t['data']:.0f} s, {rate(report, t['data']):,.0f} rows/s",
         "–", f"client-side COPY, batches of 20,000 ({peer.conversations:,} conversations): "
              f"{rate(peer, pt['data']):,.0f} rows/s; ORM add + flush one by one: {naive:,.0f} rows/s"),
        ("indexes and constraints rebuilt (incl. the full-text GIN index)", f"{t['indexes']:.0f} s", "–",
         "kept in place while loading (the COPY path): included in its rows/s"),
        ("rollups rebuilt (hourly, compact histograms, daily)", f"{t['rollups']:.0f} s", "–",
         f"COPY path at {peer.conversations:,}: {pt['rollups']:.1f} s"),
        ("VACUUM (ANALYZE) of the tables written (visibility map, hint bits, statistics)", f"{t['vacuum']:.0f} s",
         "–", f"COPY path at {peer.conversations:,}: {pt['vacuum']:.1f} s"),
    ])


def _naive_insert_rate(engine, n: int) -> float:  # noqa: ANN001
    """The naive way, on the same database: one ORM object per conversation, flushed one by one."""
    from sqlalchemy.orm import Session

    from core.models import AgentInstance, Client, Conversation, utcnow

    with Session(engine) as s:
        inst = s.query(AgentInstance).first()
        client = s.query(Client).filter(Client.shop_id == inst.shop_id).first()
        started = time.perf_counter()
        for _ in range(n):
            s.add(Conversation(agent_instance_id=inst.id, shop_id=inst.shop_id, client_id=client.id,
                               agent_type=inst.agent_type, status="completed", created_at=utcnow()))
            s.flush()
        s.rollback()
    return n / (time.perf_counter() - started)
