"""Issue 6: kill switch from the service call to the last worker's acknowledgement, two worker processes."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from bench.common import pct, scratch_postgres, table, use_database


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    args, _ = ap.parse_known_args(argv)
    with scratch_postgres() as url:
        from core.auth import system_actor
        from core.db import read_session
        from core.queries.controls import get_propagation
        from core.seed.runner import seed
        from core.services import controls
        from core.uow import UnitOfWork

        engine, actor = use_database(url), system_actor("bench")
        seed(actor=actor, engine=engine, size="minimal", conversations=0)
        env = {**os.environ, "AGENT_LOG_LEVEL": "WARNING"}
        workers = [subprocess.Popen([sys.executable, "-m", "core", "worker"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for _ in range(2)]
        acks: list[float] = []
        try:
            time.sleep(3)
            for i in range(args.trials):
                mode = "full" if i % 2 == 0 else "off"
                started = time.perf_counter()
                if mode == "off":
                    state = controls.engage_kill_switch(actor=actor, reason="bench", uow=UnitOfWork(engine))
                else:
                    state = controls.set_activation(actor=actor, mode="full", reason="bench", uow=UnitOfWork(engine))
                while True:
                    with read_session(engine) as s:
                        prop = get_propagation(s, actor=actor, version=state.version, changed_at=state.changed_at)
                    if prop.complete and len(prop.acknowledged) == 2:
                        break
                    time.sleep(0.01)
                acks.append(time.perf_counter() - started)
                time.sleep(0.3)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(timeout=30)
    return table(f"Kill switch propagation (PostgreSQL, 2 worker processes, {len(acks)} changes)", [
        ("service call → last worker acknowledged, p50", f"{pct(acks, 0.5) * 1000:.0f} ms", "–", "–"),
        ("service call → last worker acknowledged, p99", f"{pct(acks, 0.99) * 1000:.0f} ms", "< 1 s",
         "feature-flag SDKs poll every 15–60 s; the checklist allows 5 min"),
    ])
