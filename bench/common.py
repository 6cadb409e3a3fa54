"""Shared benchmark plumbing: a scratch PostgreSQL database and the table every benchmark prints."""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The URL of database NAME on the benchmark's PostgreSQL server."""
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def scratch_postgres(name: str | None = None, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head; dropped afterwards unless KEEP."""
    from core.db import make_engine
    from core.migrate import upgrade_to_head

    name = name or f"agentops_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url(name)
    eng = make_engine(url)
    upgrade_to_head(eng)
    eng.dispose()
    try:
        yield url
    finally:
        if not keep:
            from core.db import dispose_engines

            dispose_engines()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def use_database(url: str):  # noqa: ANN201 - sqlalchemy Engine, imported late like all core code here
    """Point this process's settings (and the worker processes it starts) at URL; returns its engine."""
    import os

    from core.config import reset_settings
    from core.db import dispose_engines, get_engine

    os.environ["DATABASE_URL"] = url
    reset_settings()
    dispose_engines()
    return get_engine()


def pct(values: list[float], q: float) -> float:
    """The Q-quantile (0..1) of VALUES, nearest-rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))] if ordered else float("nan")


def start_workers(n: int, env: dict[str, str]) -> list[subprocess.Popen]:
    """N `python -m core worker` processes with ENV, their output discarded."""
    return [subprocess.Popen([sys.executable, "-m", "core", "worker"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(n)]


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process (they stop cleanly), then wait for each."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)


def time_ms(fn: Callable[[], object], reps: int) -> list[float]:
    """Run FN REPS times; each run's wall time in milliseconds."""
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def table(title: str, rows: list[tuple[str, str, str, str]]) -> str:
    """A Markdown table: figure | measured | goal | peer or naive approach (same run)."""
    lines = [f"### {title}", "", "| figure | measured | goal | peer / naive (same run) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


# Several branches may benchmark at once, each at its own schema: BENCH_LOADED_DB gives each its own copy.
LOADED_DB = os.environ.get("BENCH_LOADED_DB", "agentops_bench_1m")


def loaded_postgres(conversations: int = 1_000_000) -> str:
    """A PostgreSQL database holding CONVERSATIONS from `seed --test-data load`, kept between runs."""
    from sqlalchemy import create_engine as _ce

    url = database_url(LOADED_DB)
    try:
        probe = _ce(url)
        with probe.connect() as conn:
            n = conn.execute(text("SELECT COUNT(*) FROM agent_conversations")).scalar_one()
        probe.dispose()
        if n >= conversations:
            _bring_up_to_date(url)
            return url
    except Exception:  # noqa: BLE001 - missing or broken: build it again
        pass
    with scratch_postgres(LOADED_DB, keep=True) as url:
        from core.auth import system_actor
        from core.seed.runner import seed

        seed(actor=system_actor("bench"), engine=use_database(url), size="load", conversations=conversations)
    return url


def _bring_up_to_date(url: str) -> None:
    """A kept database gets the newest schema and fresh daily rollups (what `db setup` and the prober do)."""
    from core.db import make_engine, write_bind
    from core.migrate import upgrade_to_head
    from core.rollups_daily import refresh_daily

    eng = make_engine(url)
    upgrade_to_head(eng)
    with write_bind(eng).begin() as conn:
        refresh_daily(conn, days=40)
        conn.execute(text("ANALYZE"))
    eng.dispose()
