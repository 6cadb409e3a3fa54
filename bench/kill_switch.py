"""Issue 11: the kill switch pushed (LISTEN/NOTIFY) beside the polling fallback, two busy worker processes each.

For each change: service call → the last claim any worker made (the claim stopped), and → the last worker's
acknowledgement (its heartbeat carries the new version). Workers are busy (a loopback model answering in
100 ms, conversations queued), so there is always a claim about to happen when the switch is thrown.

Run: python -m bench kill_switch [--trials 30]
"""
from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone

from sqlalchemy import func, select, text

from bench.common import pct, scratch_postgres, start_workers, stop_processes, table, use_database


def _one_switch(engine, actor) -> tuple[float, float, float, float]:  # noqa: ANN001
    """Work flowing, then the kill switch: seconds to the last claim, to the last acknowledgement, to the call's
    return, and to the moment the last worker read the change (its own clock; same machine)."""
    from core.db import read_session
    from core.models import Conversation
    from core.queries.controls import get_propagation
    from core.services import controls
    from core.services.conversations import enqueue_conversations
    from core.uow import UnitOfWork

    controls.set_activation(actor=actor, mode="full", reason="bench trial", uow=UnitOfWork(engine))
    enqueue_conversations(actor=actor, count=400, uow=UnitOfWork(engine), action=None)
    time.sleep(0.5)  # both workers busy, slots freeing every few ms
    called_at, started = datetime.now(timezone.utc), time.perf_counter()
    state = controls.engage_kill_switch(actor=actor, reason="bench trial", uow=UnitOfWork(engine))
    returned = time.perf_counter() - started
    while True:
        with read_session(engine) as s:
            prop = get_propagation(s, actor=actor, version=state.version, changed_at=state.changed_at)
        if prop.complete and len(prop.acknowledged) == 2:
            break
        time.sleep(0.005)
    acked = time.perf_counter() - started
    while True:  # in-flight work finishes; then what is still queued is cleared for the next trial
        with engine.connect() as conn:
            if not conn.execute(select(func.count()).where(Conversation.status == "in_progress")).scalar_one():
                break
        time.sleep(0.05)
    with engine.begin() as conn:
        last = conn.execute(select(func.max(Conversation.started_at))).scalar_one()
        seen = conn.execute(text("SELECT max(settings_seen_at) FROM agent_workers WHERE stopped_at IS NULL")).scalar_one()
        conn.execute(text("UPDATE agent_conversations SET status = 'completed', completed_at = now() "
                          "WHERE status = 'pending'"))
    return (max(0.0, (last - called_at).total_seconds()), acked, returned,
            max(0.0, (seen - called_at).total_seconds()))


def _wait_for_workers(engine, n: int) -> None:  # noqa: ANN001
    """Until N live workers have written a heartbeat (imports take seconds on a busy machine)."""
    while True:
        with engine.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM agent_workers WHERE stopped_at IS NULL")).scalar_one() >= n:
                time.sleep(1.0)  # and their listeners connected
                return
        time.sleep(0.1)


def _run_mode(engine, actor, env: dict[str, str], trials: int) -> list[list[float]]:  # noqa: ANN001
    with engine.begin() as conn:  # the previous mode's workers are gone
        conn.execute(text("DELETE FROM agent_workers"))
    procs = start_workers(2, env)
    figures: list[list[float]] = [[], [], [], []]
    try:
        _wait_for_workers(engine, 2)
        for _ in range(trials):
            for column, value in zip(figures, _one_switch(engine, actor)):
                column.append(value)
    finally:
        stop_processes(procs)
    return figures


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    args, _ = ap.parse_known_args(argv)
    from tests.support.fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    fake.set("ok", delay_seconds=0.1)
    try:
        with scratch_postgres() as url:
            from core.auth import system_actor
            from core.seed.runner import seed

            engine, actor = use_database(url), system_actor("bench")
            seed(actor=actor, engine=engine, size="minimal", conversations=0)
            with engine.begin() as conn:
                conn.execute(text("UPDATE clients SET opted_out = false WHERE opted_out"))
            base = {**os.environ, "DATABASE_URL": url, "AGENT_LOG_LEVEL": "WARNING", "AGENT_MAX_CONCURRENT": "10",
                    "OPENAI_API_KEY": "sk-bench-loopback", "OPENAI_BASE_URL": fake.base_url}
            pushed = _run_mode(engine, actor, {**base, "AGENT_SETTINGS_PUSH": "true"}, args.trials)
            polled = _run_mode(engine, actor, {**base, "AGENT_SETTINGS_PUSH": "false"}, args.trials)
    finally:
        fake.stop()
    return _render(pushed, polled, args.trials)


def _ms(values: list[float]) -> str:
    return f"{pct(values, 0.5) * 1000:.0f} ms / {pct(values, 0.99) * 1000:.0f} ms"


def _render(pushed: list[list[float]], polled: list[list[float]], trials: int) -> str:
    from core.config import get_settings

    ttl = get_settings().agent_settings_ttl_seconds
    return table(f"Kill switch, pushed (LISTEN/NOTIFY) and polled, PostgreSQL, 2 busy worker processes, "
                 f"{trials} changes each", [
        ("service call → last claim, p50 / p99", _ms(pushed[0]), "p99 ≤ 100 ms",
         f"polling every {ttl:g} s: {_ms(polled[0])}"),
        ("service call → last worker acknowledged, p50 / p99", _ms(pushed[1]), "p99 ≤ 200 ms",
         f"polling every {ttl:g} s: {_ms(polled[1])}; feature-flag SDKs poll every 15–60 s"),
        ("service call → last worker read the change (its clock), p50 / p99", _ms(pushed[3]), "–",
         f"polling: {_ms(polled[3])}"),
        ("the service call itself (lock, change, audit, commit), p50 / p99", _ms(pushed[2]), "–",
         f"polling run: {_ms(polled[2])}"),
    ])
