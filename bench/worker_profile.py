"""Where one worker's CPU goes per conversation (10 in flight, model answering in 100 ms), sampled with py-spy.

py-spy counts a thread blocked inside C (a queue's get, a socket's poll) as busy under load: read the shares
beside `bench/worker_bound.py`'s measured CPU, not instead of it.

Not a benchmark with goals: a profile for whoever pushes the worker to the model's bound.
Run: python -m bench.worker_profile [--seconds 30]   (needs `pip install py-spy` and ptrace rights, e.g. root;
     not `python -m bench worker_profile`, which runs every listed benchmark instead)
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from sqlalchemy import func, select, text

from bench.common import scratch_postgres, table, use_database
from bench.worker_throughput import _enqueue, _env, _prepare

# py-spy's frames read "function (path/file.py:line)"; a stack is split by the first rule whose marks it holds.
DB_FRAMES = ("sqlalchemy/", "psycopg2")
DB_PARTS = (("claim + load", "claim_and_load (core/worker/store.py"), ("claim", "claim (core/worker/store.py"), ("load", "read_conversation ("),
            ("complete", "complete (core/worker/store.py"), ("heartbeat", "_heartbeat_loop ("))
OTHER_PARTS = (("model call (openai + httpx2 + httpcore2)", ("openai/", "httpx2/", "httpcore2/", "h11/", "anyio/")),
               ("heartbeat, outside the database", ("_heartbeat_loop (",)),
               ("prompt rendering", ("render_prompt (",)),
               ("Sentry scopes", ("sentry_sdk/",)))


def _part(stack: str) -> str:
    if any(m in stack for m in DB_FRAMES) and "openai/" not in stack:
        where = next((name for name, mark in DB_PARTS if mark in stack), "other (settings, finishes)")
        return f"database: {where} (SQLAlchemy + psycopg2)"
    for name, marks in OTHER_PARTS:
        if any(m in stack for m in marks):
            return name
    if "asyncio/" in stack:
        return "the event loop itself (asyncio, task switches)"
    return "other (threads, pool, logging)"


def _split(raw: Path) -> tuple[collections.Counter, int]:
    """Samples per part from py-spy's raw (collapsed) output: one 'frame;frame;… count' line per stack."""
    parts: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            parts[_part(stack)] += int(count)
    return parts, sum(parts.values())


def _backends(engine) -> list[psutil.Process]:  # noqa: ANN001
    """The PostgreSQL server processes serving the worker (not this script's own connection)."""
    with engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")).scalars()
        return [psutil.Process(p) for p in pids]


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _profile(engine, env: dict[str, str], seconds: float, out: Path) -> dict:  # noqa: ANN001
    from core.models import Conversation as c

    ids = _enqueue(engine, int(seconds * 100 * 1.5))  # more than one worker can finish in SECONDS
    worker = subprocess.Popen([sys.executable, "-m", "core", "worker"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(3)  # imports and the first claims: not what a conversation costs
    proc = psutil.Process(worker.pid)
    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(c.id.in_(ids), c.status == "completed")).scalar_one()

    before, pg_before, done_before = proc.cpu_times(), _cpu(_backends(engine)), count()
    spy = subprocess.Popen([shutil.which("py-spy") or "py-spy", "record", "--pid", str(worker.pid), "--rate", "200",
                            "--format", "raw", "--output", str(out), "--duration", str(int(seconds))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spy.wait(timeout=seconds + 60)
    after, pg_after, done_after = proc.cpu_times(), _cpu(_backends(engine)), count()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    n = max(1, done_after - done_before)
    pg = sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items())  # connections opened meanwhile count whole
    return {"conversations": n, "seconds": seconds, "worker_ms": (after.user + after.system - before.user
                                                                  - before.system) * 1000 / n,
            "pg_ms": pg * 1000 / n}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    args, _ = ap.parse_known_args(argv)
    if not shutil.which("py-spy"):
        return "worker_profile: py-spy is not installed (pip install py-spy)\n"
    from core.auth import system_actor
    from core.seed.runner import seed
    from tests.support.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    fake.set("ok", delay_seconds=0.1)
    raw = Path(os.environ.get("KEEP_RAW") or Path(tempfile.mkdtemp()) / "worker.raw")
    try:
        with scratch_postgres() as url:
            engine = use_database(url)
            seed(actor=system_actor("bench"), engine=engine, size="minimal", conversations=0)
            _prepare(engine)
            cost = _profile(engine, _env(url, fake.base_url), args.seconds, raw)
    finally:
        fake.stop()
    parts, total = _split(raw)
    rows = [(f"CPU per conversation: worker process / PostgreSQL ({cost['conversations']:,} conversations "
             f"in {cost['seconds']:.0f} s)", f"{cost['worker_ms']:.2f} ms / {cost['pg_ms']:.2f} ms", "–", "–")]
    rows += [(f"worker CPU samples: {name}", f"{n / total:.0%} ({n * cost['worker_ms'] / total:.2f} ms)", "–", "–")
             for name, n in parts.most_common()]
    os.environ.get("KEEP_RAW") or os.remove(raw)
    return table("Worker CPU profile (py-spy, one worker, 10 in flight × 100 ms, PostgreSQL)", rows)


if __name__ == "__main__":
    print(main())
