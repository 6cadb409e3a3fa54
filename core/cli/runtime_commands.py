"""`worker` and `conversations enqueue`: the runtime's commands."""
from __future__ import annotations

import argparse
import time

from core.cli.common import actor_from_args
from core.config import get_settings
from core.db import get_engine
from core.services.conversations import enqueue_conversations
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="hold agent conversations until stopped (SIGTERM/SIGINT stop it cleanly)")
    w.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    w.set_defaults(func=run_worker)
    c = sub.add_parser("conversations", help="conversations").add_subparsers(dest="conv_command", required=True)
    e = c.add_parser("enqueue", help="create pending conversations for real clients (trials, benchmarks)")
    e.add_argument("--count", type=int, required=True)
    e.add_argument("--agent-type")
    e.add_argument("--shop", type=int)
    e.add_argument("--every", type=float, help="repeat every this many seconds (demo traffic) until stopped; audited once, at the start")
    e.set_defaults(func=enqueue)
    p = sub.add_parser("probe", help="probe the health endpoints and time the dashboard queries")
    p.add_argument("--every", type=float, help="repeat every this many seconds until stopped")
    p.set_defaults(func=probe)


def run_worker(args: argparse.Namespace) -> int:
    from core.sentry import init_sentry
    from core.worker.runner import Worker

    settings = get_settings()
    init_sentry(settings, component="worker")
    worker = Worker(engine=get_engine(), settings=settings)
    worker.install_signal_handlers()
    print(f"worker {worker.id}: provider {worker.provider.name}, up to {settings.agent_max_concurrent} in flight",
          flush=True)
    n = worker.run(max_seconds=args.max_seconds)
    print(f"worker {worker.id} stopped: {n} conversations held", flush=True)
    return 0


def enqueue(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)
    action: str | None = "conversations.traffic_start" if args.every else "conversations.enqueue"
    while True:
        ids = enqueue_conversations(actor=actor, count=args.count, agent_type=args.agent_type, shop_id=args.shop,
                                    uow=UnitOfWork(get_engine()), action=action)
        action = None
        print(f"enqueued {len(ids)} conversations ({ids[0]}…{ids[-1]})", flush=True)
        if not args.every:
            return 0
        time.sleep(args.every)


def probe(args: argparse.Namespace) -> int:
    from core.probes import run_once

    urls = get_settings().probe_urls()
    while True:
        for r in run_once(get_engine(), urls):
            state = "up" if r["ok"] else f"DOWN ({r['error']})"
            latency = f"{r['latency_ms']:.0f} ms" if r["latency_ms"] is not None else "-"
            print(f"{r['url']}: {state} {latency}", flush=True)
        if not args.every:
            return 0
        time.sleep(args.every)
