"""The agent runtime: throughput on an empty database and beside 1,000,000 finished conversations, the claim's
latency with that history (and the old claim's, on the same data), DB time per conversation, a run without
autovacuum, kill-switch propagation, and the breaker against pybreaker.

Run: BENCH_LOADED_DB=agentops_bench_1m_<branch> python -m bench worker_throughput
     [--conversations 1500] [--queued 2000] [--no-autovacuum 4000] [--trials 20]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select, text

from bench.common import (
    loaded_postgres, mean, pct, scratch_postgres, start_workers, stop_processes, table, use_database,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BOUND = 100.0  # conversations/s one worker can reach: 10 in flight, 100 ms each
# The claim as it was before migration 0005 (created_at order over the whole table), and the indexes it had.
OLD_CLAIM = """
UPDATE agent_conversations SET status = 'in_progress', lease_owner = 'bench-old', started_at = now(),
    lease_expires_at = now() + interval '60 seconds', attempts = attempts + 1, next_attempt_at = NULL
WHERE id IN (SELECT c.id FROM agent_conversations c
             WHERE ((c.status = 'pending' AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= now()))
                    OR (c.status = 'in_progress' AND c.lease_expires_at < now()))
               AND EXISTS (SELECT 1 FROM agent_instances i WHERE i.id = c.agent_instance_id AND i.status = 'active')
             ORDER BY c.created_at LIMIT 10 FOR UPDATE OF c SKIP LOCKED)
RETURNING id"""
OLD_INDEXES = ("DROP INDEX ix_agent_conversations_due",
               "CREATE INDEX ix_agent_conversations_status_created ON agent_conversations (status, created_at)",
               "CREATE INDEX ix_agent_conversations_lease ON agent_conversations (status, lease_expires_at)",
               "ANALYZE agent_conversations")
WORKER_TABLES = ("agent_conversations", "agent_messages", "agent_metrics", "agent_response_buckets", "agent_workers")


def _env(url: str, fake_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "OPENAI_API_KEY": "sk-bench-loopback", "OPENAI_BASE_URL": fake_url,
            "AGENT_MAX_CONCURRENT": "10", "AGENT_LOG_LEVEL": "WARNING"}


def _prepare(engine) -> None:  # noqa: ANN001
    """Agents fully on, and every client listening, so every conversation calls the model."""
    from core.auth import system_actor
    from core.services import controls
    from core.uow import UnitOfWork

    with engine.begin() as conn:
        conn.execute(text("UPDATE clients SET opted_out = false WHERE opted_out"))
    controls.set_activation(actor=system_actor("bench"), mode="full", reason="bench", uow=UnitOfWork(engine))


def _enqueue(engine, count: int) -> list[int]:  # noqa: ANN001
    from core.auth import system_actor
    from core.services.conversations import enqueue_conversations
    from core.uow import UnitOfWork

    ids: list[int] = []
    while len(ids) < count:
        ids += enqueue_conversations(actor=system_actor("bench"), count=min(1000, count - len(ids)),
                                     uow=UnitOfWork(engine))
    return ids


def _throughput(engine, env, n_workers: int, count: int) -> float:  # noqa: ANN001
    """Conversations per second from first claim to last completion."""
    from core.models import Conversation as c

    ids = _enqueue(engine, count)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE agent_conversations"))
    procs = start_workers(n_workers, env)
    try:
        while True:
            with engine.connect() as conn:
                left = conn.execute(select(func.count()).where(c.id.in_(ids), c.status.in_(["pending", "in_progress"]))).scalar_one()
            if left == 0:
                break
            time.sleep(0.2)
    finally:
        stop_processes(procs)
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(c.started_at), func.max(c.completed_at)).where(c.id.in_(ids))).one()
    return count / (last - first).total_seconds()


def _db_time_in_worker(engine) -> tuple[float, float]:  # noqa: ANN001
    from core.models import AgentDbTiming
    from core.rollups import bucket_value, percentile

    with engine.connect() as conn:
        rows = conn.execute(select(AgentDbTiming.bucket, func.sum(AgentDbTiming.count))
                            .where(AgentDbTiming.source == "worker").group_by(AgentDbTiming.bucket)).all()
    hist = {b: int(n) for b, n in rows}
    total = sum(hist.values())
    avg = sum(bucket_value(b) * n for b, n in hist.items()) / total if total else float("nan")
    return avg, percentile(hist, 0.95) or float("nan")


def _one_at_a_time(engine, n: int = 300) -> dict[str, list[float]]:  # noqa: ANN001
    """Claim, prompt load and completion of one conversation at a time (ms each): the database's own share."""
    from core.db import read_session
    from core.llm import Reply
    from core.models import utcnow
    from core.queries.settings import get_activation_state
    from core.worker import store
    from core.worker.context import TemplateCache, load_prompt

    _enqueue(engine, n)
    with read_session(engine) as s:
        scope = get_activation_state(s).scope()
    templates, spent = TemplateCache(), {"claim": [], "load": [], "complete": []}
    reply = Reply(text="hi", prompt_tokens=1, completion_tokens=1, provider="openai", model="gpt-4o-mini", latency_ms=1)
    for _ in range(n):
        t0 = time.perf_counter()
        [cid] = store.claim(engine, worker_id="bench", limit=1, scope=scope, lease_seconds=60)
        t1 = time.perf_counter()
        with engine.connect() as conn:
            load_prompt(conn, cid, utcnow(), templates)
        t2 = time.perf_counter()
        store.complete(engine, conversation_id=cid, worker_id="bench", reply=reply, response_ms=5)
        for key, d in (("claim", t1 - t0), ("load", t2 - t1), ("complete", time.perf_counter() - t2)):
            spent[key].append(d * 1000)
    return spent


def _summary(spent: dict[str, list[float]]) -> str:
    total = [a + b + c for a, b, c in zip(spent["claim"], spent["load"], spent["complete"])]
    parts = " + ".join(f"{mean(spent[k]):.1f}" for k in ("claim", "load", "complete"))
    return f"{mean(total):.2f} ms / {pct(total, 0.95):.2f} ms ({parts})"


def _explain(conn, sql: str, params: dict | None = None) -> dict[str, float]:  # noqa: ANN001
    """EXPLAIN ANALYZE (the statement runs; the caller rolls back): execution ms, rows its filters removed,
    and buffers it touched (the work done, which the machine's load does not change)."""
    [[plan]] = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params or {}).all()
    plan = plan if isinstance(plan, list) else json.loads(plan)

    def removed(node: dict) -> int:
        return int(node.get("Rows Removed by Filter", 0)) + sum(removed(n) for n in node.get("Plans", []))

    top = plan[0]["Plan"]
    return {"ms": plan[0]["Execution Time"], "removed": removed(top),
            "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)}


def _new_claim_sql(engine) -> tuple[str, dict]:  # noqa: ANN001
    from core.models import utcnow
    from core.queries.settings import Scope
    from core.worker import store

    stmt = store.claim_statement(worker_id="bench-new", limit=10, scope=Scope(), lease_seconds=60, now=utcnow())
    compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    return str(compiled), compiled.params


def _claim_in_postgres(engine, times: int = 1) -> list[dict[str, float]]:  # noqa: ANN001
    """The claim of 10 run TIMES inside PostgreSQL, each in a transaction rolled back."""
    sql, params = _new_claim_sql(engine)
    out = []
    with engine.connect() as conn:
        for _ in range(times):
            with conn.begin() as tx:
                out.append(_explain(conn, sql, params))
                tx.rollback()
    return out


def _old_claim(engine) -> dict[str, float]:  # noqa: ANN001
    """The old claim on the same data, with the indexes it had, in a transaction rolled back."""
    with engine.connect() as conn:
        with conn.begin() as tx:
            for ddl in OLD_INDEXES:
                conn.exec_driver_sql(ddl)
            old = _explain(conn, OLD_CLAIM)
            tx.rollback()
    return old


def _leaf_tables(conn, tables: tuple[str, ...] = WORKER_TABLES) -> list[str]:  # noqa: ANN001
    """TABLES, each partitioned one replaced by its partitions: storage settings and statistics live on those."""
    from core.partitions import partitions_of

    return [leaf for name in tables for leaf in (partitions_of(conn, name) or [name])]


def _without_autovacuum(engine, env, count: int) -> dict[str, float]:  # noqa: ANN001
    """One worker through COUNT conversations with autovacuum off, then one-at-a-time claims on the dead rows."""
    with engine.connect() as conn:
        leaves = _leaf_tables(conn)
    for table_name in leaves:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {table_name} SET (autovacuum_enabled = false)")
    try:
        rate = _throughput(engine, env, 1, count)
        time.sleep(1.0)  # the statistics collector's flush, so n_dead_tup counts this run
        with engine.connect() as conn:
            dead = conn.execute(text("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables "
                                     "WHERE relname = ANY(:names)"),
                                {"names": _leaf_tables(conn, ("agent_conversations",))}).scalar_one()
        claims = _one_at_a_time(engine, 200)["claim"]
        _enqueue(engine, 200)
        dead_rows_claim = _claim_in_postgres(engine)[0]
    finally:
        for table_name in leaves:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table_name} RESET (autovacuum_enabled)")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE " + ", ".join(WORKER_TABLES))
    vacuumed = _claim_in_postgres(engine)[0]
    return {"rate": rate, "dead": dead, "p50": pct(claims, 0.5), "p99": pct(claims, 0.99),
            "buffers": dead_rows_claim["buffers"], "buffers_vacuumed": vacuumed["buffers"]}


def _kill_propagation(engine, env, trials: int) -> list[float]:  # noqa: ANN001
    """Seconds from the kill switch's commit to the last conversation any worker claimed after it."""
    from core.auth import system_actor
    from core.models import Conversation
    from core.services import controls
    from core.uow import UnitOfWork

    actor, out = system_actor("bench"), []
    procs = start_workers(2, env)
    try:
        for _ in range(trials):
            controls.set_activation(actor=actor, mode="full", reason="bench trial", uow=UnitOfWork(engine))
            _enqueue(engine, 300)
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
        stop_processes(procs)
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


def _on_empty(args: argparse.Namespace, fake_url: str) -> dict:
    """The figures on a fresh database (the minimal seed only)."""
    from core.auth import system_actor
    from core.seed.runner import seed

    with scratch_postgres() as url:
        engine = use_database(url)
        seed(actor=system_actor("bench"), engine=engine, size="minimal", conversations=0)
        _prepare(engine)
        env = _env(url, fake_url)
        _note("empty database: throughput")
        one = _throughput(engine, env, 1, args.conversations)
        two = _throughput(engine, env, 2, args.conversations * 2)
        in_worker = _db_time_in_worker(engine)
        alone = _one_at_a_time(engine)
        _note("empty database: kill switch")
        kills = _kill_propagation(engine, env, args.trials)
    return {"one": one, "two": two, "in_worker": in_worker, "alone": alone, "kills": kills}


def _with_history(args: argparse.Namespace, fake_url: str) -> dict:
    """The figures beside 1,000,000 finished conversations, with a queue of ARGS.queued among them."""
    _note("history: building or checking the loaded database")
    url = loaded_postgres()
    engine = use_database(url)
    _prepare(engine)
    env = _env(url, fake_url)
    with engine.connect() as conn:
        history = conn.execute(text("SELECT count(*) FROM agent_conversations")).scalar_one()
    _note(f"history ({history:,} conversations): throughput")
    one = _throughput(engine, env, 1, args.conversations)
    _note("history: old and new claim, claims one at a time")
    _enqueue(engine, args.queued)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE agent_conversations"))
    claims = {"old": _old_claim(engine), "new": _claim_in_postgres(engine, 200)}
    alone = _one_at_a_time(engine, 500)  # claims among the queue (and the history)
    _drain(engine, env)
    _note("history: autovacuum off")
    quiet = _without_autovacuum(engine, env, args.no_autovacuum) if args.no_autovacuum else None
    return {"history": history, "one": one, "claims": claims, "alone": alone, "quiet": quiet, "queued": args.queued}


def _drain(engine, env) -> None:  # noqa: ANN001
    """Let workers finish what the measurements left queued, so the next run starts from finished history
    (work of paused instances stays pending, as it would in production)."""
    from core.models import AgentInstance as i
    from core.models import Conversation as c

    claimable = (select(func.count()).select_from(c).join(i, i.id == c.agent_instance_id)
                 .where(c.status.in_(["pending", "in_progress"]), i.status == "active"))
    procs = start_workers(2, env)
    try:
        while True:
            with engine.connect() as conn:
                if not conn.execute(claimable).scalar_one():
                    return
            time.sleep(0.5)
    finally:
        stop_processes(procs)


def _note(what: str) -> None:
    """Progress on stderr: the run takes minutes."""
    print(f"[worker_throughput {time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1500)
    ap.add_argument("--queued", type=int, default=2000)
    ap.add_argument("--no-autovacuum", type=int, default=4000, help="conversations in the run without autovacuum (0: skip)")
    ap.add_argument("--trials", type=int, default=20)
    args, _ = ap.parse_known_args(argv)
    from tests.support.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    fake.set("ok", delay_seconds=10 / BOUND)  # 10 in flight at 100 ms each: the 100/s bound
    try:
        empty = _on_empty(args, fake.base_url)
        loaded = _with_history(args, fake.base_url)
        ours, peer = _breaker_peer(fake.base_url)
    finally:
        fake.stop()
    return _render(empty, loaded, ours, peer)


def _render(empty: dict, loaded: dict, ours: float, peer: float) -> str:
    hist, one, old, new = loaded["history"], loaded["one"], loaded["claims"]["old"], loaded["claims"]["new"]
    in_pg = [e["ms"] for e in new]
    claims, kills = loaded["alone"]["claim"], empty["kills"]
    rows = [
        ("conversations/s, one worker, empty database", f"{empty['one']:.1f} ({empty['one'] / BOUND:.0%} of bound)",
         "≥ 90 (90% of the 100/s bound)", "–"),
        ("conversations/s, two workers, empty database", f"{empty['two']:.1f} ({empty['two'] / (2 * BOUND):.0%} of bound)",
         "≥ 180", "–"),
        (f"conversations/s, one worker, beside {hist:,} conversations", f"{one:.1f} ({one / empty['one']:.0%} of empty)",
         "within 10 % of the empty database", f"empty database: {empty['one']:.1f}"),
        (f"claim with that history, one at a time, seen by the worker, p50 / p99 ({len(claims)} claims)",
         f"{pct(claims, 0.5):.2f} ms / {pct(claims, 0.99):.2f} ms", "p99 < 5 ms", "–"),
        (f"claim of 10 among {loaded['queued']:,} queued, inside PostgreSQL (EXPLAIN ANALYZE ×{len(new)}): "
         "p50 / p99; rows its filters removed; buffers touched",
         f"{pct(in_pg, 0.5):.2f} ms / {pct(in_pg, 0.99):.2f} ms; {new[0]['removed']:,} rows; {new[0]['buffers']:,}",
         "p99 < 5 ms", f"old claim (created_at order, its old indexes): {old['ms']:,.0f} ms; {old['removed']:,} rows; "
                       f"{old['buffers']:,} buffers"),
        ("DB time per conversation, one at a time (claim + load + complete), mean / p95, empty",
         _summary(empty["alone"]), "< 5 ms", "–"),
        ("the same beside the history", _summary(loaded["alone"]), "< 5 ms", "–"),
        ("DB time per conversation inside a busy worker (incl. waits for the GIL), mean / p95",
         f"{empty['in_worker'][0]:.2f} ms / {empty['in_worker'][1]:.2f} ms", "–", "–"),
    ]
    if loaded["quiet"]:
        q = loaded["quiet"]
        rows.append((f"autovacuum off: conversations/s, one worker; then claim p50 / p99 and buffers beside "
                     f"{q['dead']:,} dead rows", f"{q['rate']:.1f}; {q['p50']:.2f} ms / {q['p99']:.2f} ms; "
                     f"{q['buffers']:,} buffers", "within 10 % of the empty database",
                     f"autovacuum on: {one:.1f}; after VACUUM: {q['buffers_vacuumed']:,} buffers"))
    rows += [
        (f"kill switch → last new claim, p50 / p99 ({len(kills)} trials, 2 workers)",
         f"{pct(kills, 0.5) * 1000:.0f} ms / {pct(kills, 0.99) * 1000:.0f} ms", "p99 < 1 s",
         "feature-flag clients poll every 15–60 s"),
        ("model calls/s through one breaker, 10 threads", f"{ours:.1f}", "≈ 100 (not serialised)", f"pybreaker: {peer:.1f}"),
    ]
    return table("Agent runtime (PostgreSQL, loopback model answering in 100 ms, AGENT_MAX_CONCURRENT=10)", rows)


if __name__ == "__main__":
    print(main())
