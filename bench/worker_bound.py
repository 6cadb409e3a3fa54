"""Issue 11: one worker at the model's bound, beside a bare openai client loop in the same run.

The model is a loopback server answering in 100 ms, so AGENT_MAX_CONCURRENT=10 bounds a worker at 100/s (and
100 in flight at 1000/s). Beside each worker run, the bare `openai` client with as many threads, and the bare
`AsyncOpenAI` client with as many tasks, make the same calls with no database at all: the peers. CPU per conversation is the worker process plus the PostgreSQL
backends serving it, against the bare client process alone (the loopback server's CPU is in neither).

Run: python -m bench worker_bound [--conversations 1500] [--wide 4000]
     (BENCH_LOADED_DB=agentops_bench_1m_<branch> to run beside a 1M-conversation history; default: empty database)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import nullcontext

import psutil
from sqlalchemy import func, select, text

from bench.common import loaded_postgres, scratch_postgres, stop_processes, table, use_database
from bench.worker_throughput import _enqueue, _env, _prepare

LATENCY = 0.1  # seconds the loopback model takes per answer
BARE = """
import sys, time, threading, openai
threads, calls, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
client = openai.OpenAI(api_key="sk-bench", base_url=url, max_retries=0, timeout=30)
left, lock = [calls], threading.Lock()
def loop():
    while True:
        with lock:
            if left[0] == 0: return
            left[0] -= 1
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": "You write short SMS messages for a barbershop."},
            {"role": "user", "content": "Write the SMS message now. A message in the right spirit: hi"}])
workers = [threading.Thread(target=loop) for _ in range(threads)]
cpu0, t0 = time.process_time(), time.perf_counter()
[w.start() for w in workers]; [w.join() for w in workers]
print(calls / (time.perf_counter() - t0), (time.process_time() - cpu0) / calls)
"""


BARE_ASYNC = """
import asyncio, sys, time, openai
tasks, calls, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
async def run():
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0, timeout=30)
    left = [calls]
    async def loop():
        while left[0]:
            left[0] -= 1
            await client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "system", "content": "You write short SMS messages for a barbershop."},
                {"role": "user", "content": "Write the SMS message now. A message in the right spirit: hi"}])
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    print(calls / (time.perf_counter() - t0), (time.process_time() - cpu0) / calls)
    await client.close()
asyncio.run(run())
"""


def _bare(fake_url: str, threads: int, calls: int, script: str = BARE) -> tuple[float, float]:
    """Calls/s and CPU seconds per call of a bare client (its own process, no database)."""
    out = subprocess.run([sys.executable, "-c", script, str(threads), str(calls), fake_url], capture_output=True,
                         text=True, check=True, timeout=600).stdout.split()
    return float(out[0]), float(out[1])


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:  # a backend that ended: its time is lost (rare; the pool keeps them)
            pass
    return out


def _serving(engine, worker: subprocess.Popen) -> list[psutil.Process]:  # noqa: ANN001
    """The worker process and the PostgreSQL backends of its connections (matched by the worker's own ports)."""
    proc = psutil.Process(worker.pid)
    ports = [c.laddr.port for c in proc.net_connections(kind="tcp") if c.raddr and c.raddr.port == 5432]
    with engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(:ports)"),
                            {"ports": ports}).scalars().all()
    return [proc, *(psutil.Process(p) for p in pids)]


def _worker_run(engine, env: dict[str, str], count: int) -> tuple[float, float, float, float]:  # noqa: ANN001
    """One worker through COUNT queued conversations: conversations/s, CPU s per conversation (worker and its
    PostgreSQL backends), cores busy, and the worker process's own CPU s per conversation.

    CPU is counted from the worker's first heartbeat (imports done) to the end, over the conversations finished
    in that window."""
    from core.models import Conversation as c

    ids = _enqueue(engine, count)  # queued first: the enqueue's own pace must not set the worker's

    def finished() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                c.id.in_(ids), c.status.not_in(["pending", "in_progress"]))).scalar_one()

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM agent_workers"))
    proc = subprocess.Popen([sys.executable, "-m", "core", "worker"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:  # started and connected
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM agent_workers")).scalar_one():
                    break
            time.sleep(0.05)
        before, done_before, wall = _cpu(_serving(engine, proc)), finished(), time.perf_counter()
        while (done := finished()) < count:
            time.sleep(0.2)
        wall = time.perf_counter() - wall
        after = _cpu(_serving(engine, proc))
    finally:
        stop_processes([proc])
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(c.started_at), func.max(c.completed_at)).where(c.id.in_(ids))).one()
    cpu = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    own = after.get(proc.pid, 0.0) - before.get(proc.pid, 0.0)
    n = max(1, done - done_before)
    return count / (last - first).total_seconds(), cpu / n, cpu / wall, own / n


def _database(args: argparse.Namespace):  # noqa: ANN202
    if os.environ.get("BENCH_LOADED_DB"):
        return nullcontext(loaded_postgres())
    return scratch_postgres()


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1500)
    ap.add_argument("--wide", type=int, default=4000, help="conversations for the AGENT_MAX_CONCURRENT=100 run")
    args, _ = ap.parse_known_args(argv)
    from tests.support.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    fake.set("ok", delay_seconds=LATENCY)
    try:
        with _database(args) as url:
            from core.auth import system_actor
            from core.seed.runner import seed

            engine = use_database(url)
            with engine.connect() as conn:
                history = conn.execute(text("SELECT count(*) FROM agent_conversations")).scalar_one()
            if not history:
                seed(actor=system_actor("bench"), engine=engine, size="minimal", conversations=0)
            _prepare(engine)
            env = _env(url, fake.base_url)
            figures = {"history": history, "load_before": os.getloadavg()}
            for n, count in ((10, args.conversations), (100, args.wide)):
                figures[f"bare{n}"] = _bare(fake.base_url, n, count)
                figures[f"async{n}"] = _bare(fake.base_url, n, count, BARE_ASYNC)
                figures[f"one{n}"] = _worker_run(engine, {**env, "AGENT_MAX_CONCURRENT": str(n)}, count)
            figures["load_after"] = os.getloadavg()
    finally:
        fake.stop()
    return _render(figures)


def _peers(bare: tuple[float, float], aio: tuple[float, float]) -> str:
    return (f"bare openai client: {bare[0]:.1f}/s, {bare[1] * 1000:.2f} ms CPU each; "
            f"bare AsyncOpenAI: {aio[0]:.1f}/s, {aio[1] * 1000:.2f} ms CPU each")


def _render(f: dict) -> str:
    where = f"beside {f['history']:,} conversations" if f["history"] else "empty database"
    load = f"load average {f['load_before'][0]:.2f} before, {f['load_after'][0]:.2f} after; 2 cores, shared"
    rows = []
    for n, bound in ((10, 100.0), (100, 1000.0)):
        bare, aio, one = f[f"bare{n}"], f[f"async{n}"], f[f"one{n}"]
        rows += [
            (f"conversations/s, one worker, AGENT_MAX_CONCURRENT={n}",
             f"{one[0]:.1f} ({one[0] / bound:.0%} of the {bound:.0f}/s bound; {one[0] / bare[0]:.0%} of the bare "
             f"client, {one[0] / aio[0]:.0%} of bare AsyncOpenAI)",
             "≥ 95 % of the bound and of the bare client" if n == 10 else "–", _peers(bare, aio)),
            (f"CPU per conversation, worker + PostgreSQL, {n} in flight",
             f"{one[1] * 1000:.2f} ms (worker {one[3] * 1000:.2f} + PostgreSQL {(one[1] - one[3]) * 1000:.2f}; "
             f"{one[1] / bare[1]:.1f}× the bare client, {one[1] / aio[1]:.1f}× bare AsyncOpenAI)", "≤ 1.5× the bare client" if n == 10 else "–", _peers(bare, aio)),
            (f"conversations per CPU-second (per core), worker + PostgreSQL, {n} in flight",
             f"{1 / one[1]:.0f} ({one[2]:.2f} cores busy)", "–",
             f"bare client {1 / bare[1]:.0f}, bare AsyncOpenAI {1 / aio[1]:.0f} calls per CPU-second"),
        ]
    return table(f"Worker at the model's bound (PostgreSQL, {where}, loopback model answering in 100 ms; {load})",
                 rows)
