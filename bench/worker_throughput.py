"""Issue 3: worker throughput against a 100 ms model, DB time per conversation, kill-switch propagation.

Run: python -m bench worker_throughput [--conversations 1500] [--trials 20]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select, text

from bench.common import mean, pct, scratch_postgres, table, use_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _env(url: str, fake_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "OPENAI_API_KEY": "sk-bench-loopback", "OPENAI_BASE_URL": fake_url,
            "AGENT_MAX_CONCURRENT": "10", "AGENT_LOG_LEVEL": "WARNING"}


def _workers(n: int, env: dict[str, str]) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-m", "core", "worker"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(n)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)


def _throughput(engine, env, n_workers: int, count: int) -> tuple[float, float]:
    """Conversations per second from first claim to last completion, and the wall time."""
    from core.auth import system_actor
    from core.models import Conversation
    from core.services.conversations import enqueue_conversations
    from core.uow import UnitOfWork

    ids = enqueue_conversations(actor=system_actor("bench"), count=count, uow=UnitOfWork(engine))
    procs = _workers(n_workers, env)
    c = Conversation
    try:
        while True:
            with engine.connect() as conn:
                left = conn.execute(select(func.count()).where(c.id.in_(ids), c.status.in_(["pending", "in_progress"]))).scalar_one()
            if left == 0:
                break
            time.sleep(0.2)
    finally:
        _stop(procs)
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(c.started_at), func.max(c.completed_at)).where(c.id.in_(ids))).one()
    seconds = (last - first).total_seconds()
    return count / seconds, seconds


def _db_time_per_conversation(engine) -> tuple[float, float]:
    from core.models import AgentDbTiming
    from core.rollups import bucket_value, percentile

    with engine.connect() as conn:
        rows = conn.execute(select(AgentDbTiming.bucket, func.sum(AgentDbTiming.count))
                            .where(AgentDbTiming.source == "worker").group_by(AgentDbTiming.bucket)).all()
    hist = {b: int(n) for b, n in rows}
    total = sum(hist.values())
    avg = sum(bucket_value(b) * n for b, n in hist.items()) / total if total else float("nan")
    return avg, percentile(hist, 0.95) or float("nan")


def _isolated_db_time(engine, n: int = 300) -> dict[str, float]:  # noqa: ANN001
    """Claim, prompt load and completion of one conversation at a time: the database's own share (ms)."""
    from core.auth import system_actor
    from core.db import read_session
    from core.llm import Reply
    from core.models import utcnow
    from core.queries.settings import get_activation_state
    from core.services.conversations import enqueue_conversations
    from core.uow import UnitOfWork
    from core.worker import store
    from core.worker.context import TemplateCache, load_prompt

    enqueue_conversations(actor=system_actor("bench"), count=n, uow=UnitOfWork(engine))
    with read_session(engine) as s:
        state = get_activation_state(s)
    templates, spent = TemplateCache(), {"claim": [], "load": [], "complete": []}
    reply = Reply(text="hi", prompt_tokens=1, completion_tokens=1, provider="openai", model="gpt-4o-mini", latency_ms=1)
    for _ in range(n):
        t0 = time.perf_counter()
        [cid] = store.claim(engine, worker_id="bench", limit=1, scope=state.scope(), lease_seconds=60)
        t1 = time.perf_counter()
        with engine.connect() as conn:
            load_prompt(conn, cid, utcnow(), templates)
        t2 = time.perf_counter()
        store.complete(engine, conversation_id=cid, worker_id="bench", reply=reply, response_ms=5)
        t3 = time.perf_counter()
        for key, d in (("claim", t1 - t0), ("load", t2 - t1), ("complete", t3 - t2)):
            spent[key].append(d * 1000)
    total = [a + b + c for a, b, c in zip(spent["claim"], spent["load"], spent["complete"])]
    return {"mean": mean(total), "p95": pct(total, 0.95), **{k: mean(v) for k, v in spent.items()}}


def _kill_propagation(engine, env, trials: int) -> list[float]:
    """Seconds from the kill switch's commit to the last conversation any worker claimed after it."""
    from core.auth import system_actor
    from core.models import Conversation
    from core.services import controls
    from core.services.conversations import enqueue_conversations
    from core.uow import UnitOfWork

    actor, out = system_actor("bench"), []
    procs = _workers(2, env)
    try:
        for _ in range(trials):
            controls.set_activation(actor=actor, mode="full", reason="bench trial", uow=UnitOfWork(engine))
            enqueue_conversations(actor=actor, count=300, uow=UnitOfWork(engine))
            time.sleep(0.6)
            state = controls.engage_kill_switch(actor=actor, reason="bench trial", uow=UnitOfWork(engine))
            time.sleep(1.5)
            with engine.connect() as conn:
                last = conn.execute(select(func.max(Conversation.started_at))).scalar_one()
                conn.execute(text("UPDATE agent_conversations SET status = 'completed', completed_at = now() "
                                  "WHERE status = 'pending'"))
                conn.commit()
            out.append(max(0.0, (last - state.changed_at).total_seconds()))
            while True:  # let in-flight work finish before the next trial
                with engine.connect() as conn:
                    if not conn.execute(select(func.count()).where(Conversation.status == "in_progress")).scalar_one():
                        break
                time.sleep(0.1)
    finally:
        _stop(procs)
    return out


def _breaker_peer(fake_url: str, seconds: float = 4.0) -> tuple[float, float]:
    """Calls/s through one breaker from 10 threads: ours vs pybreaker (which locks around the call)."""
    import openai
    import pybreaker

    from core.breaker import CircuitBreaker

    client = openai.OpenAI(api_key="sk-bench", base_url=fake_url, max_retries=0, timeout=5)

    def call() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    def measure(guarded) -> float:  # noqa: ANN001
        done, stop = [0], time.monotonic() + seconds
        lock = threading.Lock()

        def loop() -> None:
            while time.monotonic() < stop:
                guarded()
                with lock:
                    done[0] += 1

        threads = [threading.Thread(target=loop) for _ in range(10)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        return done[0] / seconds

    ours = CircuitBreaker(name="bench")

    def ours_call() -> None:
        if ours.allow():
            call()
            ours.record_success()

    peer = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    return measure(ours_call), measure(lambda: peer.call(call))


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1500)
    ap.add_argument("--trials", type=int, default=20)
    args, _ = ap.parse_known_args(argv)
    from tests.support.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    fake.set("ok", delay_seconds=0.1)
    try:
        with scratch_postgres() as url:
            from core.auth import system_actor
            from core.seed.runner import seed
            from core.services import controls
            from core.uow import UnitOfWork

            engine = use_database(url)
            seed(actor=system_actor("bench"), engine=engine, size="minimal", conversations=0)
            with engine.begin() as conn:  # every client answers, so every conversation calls the model
                conn.execute(text("UPDATE clients SET opted_out = false"))
            controls.set_activation(actor=system_actor("bench"), mode="full", reason="bench", uow=UnitOfWork(engine))
            env = _env(url, fake.base_url)
            one, _ = _throughput(engine, env, 1, args.conversations)
            two, _ = _throughput(engine, env, 2, args.conversations * 2)
            db_avg, db_p95 = _db_time_per_conversation(engine)
            iso = _isolated_db_time(engine)
            kills = _kill_propagation(engine, env, args.trials)
            ours, peer = _breaker_peer(fake.base_url)
    finally:
        fake.stop()
    bound = 100.0
    return table("Agent runtime (PostgreSQL, loopback model answering in 100 ms, AGENT_MAX_CONCURRENT=10)", [
        ("conversations/s, one worker", f"{one:.1f} ({one / bound:.0%} of bound)", f"≥ 90 ({0.9 * bound:.0f}% of 100/s bound)", "–"),
        ("conversations/s, two workers", f"{two:.1f} ({two / (2 * bound):.0%} of bound)", "≥ 180 (twice one worker's goal)", "–"),
        ("DB time per conversation, one at a time (claim + load + complete), mean / p95",
         f"{iso['mean']:.2f} ms / {iso['p95']:.2f} ms ({iso['claim']:.1f} + {iso['load']:.1f} + {iso['complete']:.1f})",
         "< 5 ms", "–"),
        ("DB time per conversation inside a busy worker (incl. waits for the GIL), mean / p95",
         f"{db_avg:.2f} ms / {db_p95:.2f} ms", "–", "–"),
        (f"kill switch → last new claim, p50 / p99 ({len(kills)} trials, 2 workers)",
         f"{pct(kills, 0.5) * 1000:.0f} ms / {pct(kills, 0.99) * 1000:.0f} ms", "p99 < 1 s", "feature-flag clients poll every 15–60 s"),
        ("model calls/s through one breaker, 10 threads", f"{ours:.1f}", "≈ 100 (not serialised)", f"pybreaker: {peer:.1f}"),
    ])


if __name__ == "__main__":
    print(main())
