"""Issue 11, a real read replica: the Agent health reads on the replica beside the primary, the replica's lag under
a write load, and what a read costs while the replica is down (refused, or hanging) with the cached down state
beside the naive way (try the replica on every read).

Runs on a private primary (initdb on loopback) seeded with `seed --test-data load`, and its streaming replica made by
scripts/make-replica, so the shared server is never disturbed: python -m bench read_replica [--conversations N]."""
from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from collections.abc import Callable

from bench.common import pct, table, time_ms

HEALTH_WINDOW_HOURS = 24


def _health_reads(session_factory: Callable) -> Callable[[], None]:
    """The Agent health page's read set (dashboard.data.health_figures) in one session from SESSION_FACTORY."""
    from core.auth import system_actor
    from core.queries import health, metrics

    actor, hours = system_actor("bench"), HEALTH_WINDOW_HOURS

    def run() -> None:
        with session_factory() as s:
            summary = metrics.get_summary(s, actor=actor, window_hours=hours)
            workers = health.list_workers(s, actor=actor)
            health.evaluate_criteria(s, actor=actor, summary=summary, workers=workers)
            metrics.get_timeseries(s, actor=actor, window_hours=hours)
            metrics.get_breakdown(s, actor=actor, window_hours=hours, by="agent_type")
            metrics.get_breakdown(s, actor=actor, window_hours=hours, by="shop")
            health.probe_history(s, actor=actor, window_hours=hours)

    return run


def _set_read_url(url: str, *, retry_seconds: float = 5.0) -> None:
    from core.config import reset_settings
    from core.db import dispose_engines
    from core.read_routing import forget_replica_state

    os.environ["DATABASE_READ_URL"] = url
    os.environ["DATABASE_READ_RETRY_SECONDS"] = str(retry_seconds)
    reset_settings()
    dispose_engines()
    forget_replica_state()


def _reads_rows(primary_engine, reps: int) -> list[tuple[str, str, str, str]]:
    from core.db import read_session
    from core.read_routing import replica_session

    on_replica = _health_reads(replica_session)
    on_primary = _health_reads(lambda: read_session(primary_engine))
    on_replica(), on_primary()  # warm both caches
    rep, prim = time_ms(on_replica, reps), time_ms(on_primary, reps)
    tiny_rep = time_ms(_routed_select(replica_session), 200)
    tiny_prim = time_ms(_routed_select(lambda: read_session(primary_engine)), 200)
    return [("Agent health read set (24 h), on the replica, p50 / p95",
             f"{pct(rep, 0.5):,.1f} / {pct(rep, 0.95):,.1f} ms", "≈ the primary's",
             f"on the primary: {pct(prim, 0.5):,.1f} / {pct(prim, 0.95):,.1f} ms"),
            ("a routed SELECT 1 on the replica, p50 / p95", f"{pct(tiny_rep, 0.5):.2f} / {pct(tiny_rep, 0.95):.2f} ms",
             "≈ the primary's", f"on the primary: {pct(tiny_prim, 0.5):.2f} / {pct(tiny_prim, 0.95):.2f} ms")]


def _lag_rows(replica, seconds: float) -> list[tuple[str, str, str, str]]:
    """Lag sampled every 50 ms while a writer enqueues conversations, 100 per transaction, as fast as it can."""
    from core.auth import system_actor
    from core.queries.replica import get_replica_status
    from core.services.conversations import enqueue_conversations
    from core.uow import UnitOfWork

    actor, stop, written = system_actor("bench"), threading.Event(), [0]

    def writer() -> None:
        while not stop.is_set():
            enqueue_conversations(actor=actor, count=100, uow=UnitOfWork())
            written[0] += 100

    thread = threading.Thread(target=writer, daemon=True)
    samples, cost = [], []
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        samples.append(get_replica_status(actor=actor))
        cost.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)  # the sampling interval
    stop.set()
    thread.join()
    replica.wait_caught_up()
    secs = [s.lag_seconds for s in samples if s.lag_seconds is not None]
    size = [float(s.lag_bytes) for s in samples if s.lag_bytes is not None]
    return [(f"replica lag under writes ({written[0] / seconds:,.0f} conversations/s enqueued), p50 / p95 / max",
             f"{pct(secs, 0.5):.3f} / {pct(secs, 0.95):.3f} / {max(secs):.3f} s", "< 1 s on loopback", "–"),
            ("WAL behind under those writes, p50 / p95 / max",
             f"{pct(size, 0.5):,.0f} / {pct(size, 0.95):,.0f} / {max(size):,.0f} bytes", "–", "–"),
            ("cost of one lag reading (2 queries), p50", f"{pct(cost, 0.5):.1f} ms", "–", "–")]


def _routed_select(replica_session) -> Callable[[], None]:
    """The smallest routed read (SELECT 1): what the routing itself costs, without a query's own time."""
    from sqlalchemy import text

    def run() -> None:
        with replica_session() as s:
            s.execute(text("SELECT 1"))

    return run


def _outage_rows(label: str, read_url: str, run: Callable[[], None], reps: int,
                 primary_ms: float) -> list[tuple[str, str, str, str]]:
    """Reads while the replica at READ_URL is down: the first, then the rest (cached down state), then naive."""
    from core.read_routing import forget_replica_state, replica_session

    _set_read_url(read_url, retry_seconds=300)  # one outage window covers the whole measurement
    first = time_ms(run, 1)[0]
    rest = time_ms(run, reps)
    tiny = _routed_select(replica_session)
    tiny_cached = time_ms(tiny, 200)

    def naive(fn: Callable[[], None]) -> Callable[[], None]:
        def again() -> None:
            forget_replica_state()  # no memory of the failure: every read tries the replica first
            fn()
        return again

    tries, tiny_naive = time_ms(naive(run), max(3, reps // 5)), time_ms(naive(tiny), 10)
    return [(f"replica {label}: first Agent health read set (finds it down)", f"{first:,.1f} ms",
             "≤ connect timeout + a read", "–"),
            (f"replica {label}: later read sets p50 / p95 (down state cached)",
             f"{pct(rest, 0.5):,.1f} / {pct(rest, 0.95):,.1f} ms", f"≈ the primary's ({primary_ms:,.1f} ms p50)",
             f"naive, replica tried on every read: {pct(tries, 0.5):,.1f} / {pct(tries, 0.95):,.1f} ms"),
            (f"replica {label}: a routed SELECT 1, p50 / p95 (down state cached)",
             f"{pct(tiny_cached, 0.5):.2f} / {pct(tiny_cached, 0.95):.2f} ms", "≈ a SELECT 1 on the primary",
             f"naive: {pct(tiny_naive, 0.5):,.2f} / {pct(tiny_naive, 0.95):,.2f} ms")]


def _hanging_port() -> tuple[socket.socket, int]:
    """A port whose TCP handshake completes but which never speaks: a hung replica (not accepted, never answered)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--lag-seconds", type=float, default=10.0)
    args, _ = ap.parse_known_args(argv)
    from bench.common import use_database
    from core.auth import system_actor
    from core.db import read_session
    from core.migrate import upgrade_to_head
    from core.read_routing import replica_session
    from core.seed.runner import seed
    from tests.support.pg_cluster import PgCluster
    from tests.support.pg_replica import PgReplica

    with PgCluster(settings={"shared_buffers": "256MB", "fsync": "on", "synchronous_commit": "on"}) as primary:
        engine = use_database(primary.create_database("agentops"))
        upgrade_to_head(engine)
        seed(actor=system_actor("bench"), engine=engine, size="load", conversations=args.conversations)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        replica = PgReplica(primary).create()
        try:
            replica.wait_caught_up(timeout=300)
            _set_read_url(replica.url())
            rows = _reads_rows(engine, args.reps)
            rows += _lag_rows(replica, args.lag_seconds)
            on_primary = time_ms(_health_reads(lambda: read_session(engine)), args.reps)
            run = _health_reads(replica_session)
            replica.stop()
            rows += _outage_rows("stopped (connection refused)", replica.url(), run, args.reps, pct(on_primary, 0.5))
            hang, port = _hanging_port()
            try:
                rows += _outage_rows("hanging (never answers; connect timeout 2 s)",
                                     f"postgresql://postgres@127.0.0.1:{port}/agentops", run, args.reps,
                                     pct(on_primary, 0.5))
            finally:
                hang.close()
        finally:
            replica.stop()
    return table(f"Read replica (PostgreSQL 15 streaming replica on loopback, {args.conversations:,} conversations, "
                 "2 shared cores)", rows)


if __name__ == "__main__":
    print(main())
