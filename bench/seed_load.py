"""Issue 2: `seed --test-data load` writes 1,000,000 conversations into PostgreSQL; goal under 5 minutes."""
from __future__ import annotations

import argparse
import time

from bench.common import scratch_postgres, table, use_database


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1_000_000)
    args, _ = ap.parse_known_args(argv)
    from core.auth import system_actor
    from core.seed.runner import seed

    with scratch_postgres() as url:
        engine = use_database(url)
        report = seed(actor=system_actor("bench"), engine=engine, size="load", conversations=args.conversations)
        naive_rate = _naive_insert_rate(engine, 5000)
    return table(f"Load data (PostgreSQL, {report.conversations:,} conversations, {report.messages:,} messages)", [
        ("wall time incl. rollups", f"{report.seconds:.0f} s", "< 300 s", "–"),
        ("rows/s (COPY, batches of 20,000)", f"{report.rows_per_second:,.0f}", "–",
         f"ORM add + flush, one row at a time: {naive_rate:,.0f} rows/s"),
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
