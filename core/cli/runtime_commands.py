"""`worker`, `probe` and `conversations enqueue` (added to the group review_commands owns): the runtime's commands."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable

from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from core.auth import Actor
from core.cli.common import actor_from_args, seconds, shop_id, whole
from core.config import get_settings, mask_url
from core.db import get_engine
from core.errors import AgentOpsError, describe_database_error
from core.services.conversations import enqueue_conversations
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="hold agent conversations until stopped (SIGTERM/SIGINT stop it cleanly)")
    w.add_argument("--max-seconds", type=seconds(0.1, 366 * 86_400), help="stop after this many seconds")
    w.set_defaults(func=run_worker)
    p = sub.add_parser("probe", help="probe the health endpoints and time the dashboard queries")
    p.add_argument("--every", type=seconds(0.1, 86_400), help="repeat every this many seconds until stopped")
    p.set_defaults(func=probe)


def add_enqueue(conversations: argparse._SubParsersAction) -> None:
    """`conversations enqueue`, added to the `conversations` group (core.cli.review_commands owns the group)."""
    e = conversations.add_parser("enqueue", help="create pending conversations for real clients (trials, benchmarks)")
    e.add_argument("--count", type=whole(1, 1_000_000), required=True)
    e.add_argument("--agent-type")
    e.add_argument("--shop", type=shop_id)
    e.add_argument("--every", type=seconds(0.1, 86_400),
                   help="repeat every this many seconds (demo traffic) until stopped; audited once, at the start")
    e.set_defaults(func=enqueue)


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
    if worker.database_error is not None:  # a supervisor must not read a run without the database as a success
        from core.errors import describe_database_error

        problem = describe_database_error(worker.database_error)
        print(f"error: worker {worker.id} stopped without its database. {problem}", file=sys.stderr)
        return 1
    return 0


def enqueue(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)
    action: list[str | None] = ["conversations.traffic_start" if args.every else "conversations.enqueue"]

    def batch() -> None:
        ids = enqueue_conversations(actor=actor, count=args.count, agent_type=args.agent_type, shop_id=args.shop,
                                    uow=UnitOfWork(get_engine()), action=action[0])
        print(f"enqueued {len(ids)} conversations ({ids[0]}…{ids[-1]})", flush=True)
        if action[0]:
            _warn_held_back(actor, ids)
        action[0] = None  # demo traffic is audited once, when it starts

    return repeat(batch, every=args.every)


def _warn_held_back(actor: Actor, ids: list[int]) -> None:
    """Say when the switch, or the lack of a live worker, keeps what was just queued from starting: otherwise it only
    looks like a stuck worker."""
    from core.db import read_session
    from core.queries.settings import held_back

    with read_session(get_engine()) as s:
        waiting, why = held_back(s, actor=actor, conversation_ids=ids)
    if waiting:
        print(f"warning: {waiting} of {len(ids)} will wait: {why}.", file=sys.stderr, flush=True)


def probe(args: argparse.Namespace) -> int:
    from core.probes import run_once

    urls = get_settings().probe_urls()

    def once() -> None:
        for r in run_once(get_engine(), urls):
            state = "up" if r["ok"] else f"DOWN ({r['error']})"
            latency = f"{r['latency_ms']:.0f} ms" if r["latency_ms"] is not None else "-"
            print(f"{mask_url(r['url'])}: {state} {latency}", flush=True)

    return repeat(once, every=args.every)


def repeat(step: Callable[[], None], *, every: float | None, stop: threading.Event | None = None) -> int:
    """Run STEP once, or every EVERY seconds until stopped (by STOP, when given). A loop outlives a database rollback
    or outage: it says what is wrong once, waits, and carries on when the tables are back (bad flags still stop it
    at the start)."""
    ran, waiting, stop = False, "", stop or threading.Event()
    while not stop.is_set():
        try:
            step()
        except (OperationalError, ProgrammingError, InterfaceError, AgentOpsError) as exc:
            if not every or (isinstance(exc, AgentOpsError) and not ran):
                raise
            problem = str(exc) if isinstance(exc, AgentOpsError) else describe_database_error(exc)
            if problem != waiting:
                print(f"waiting: {problem}", flush=True)
                waiting = problem
        else:
            if waiting:
                print("the database is back; carrying on", flush=True)
            ran, waiting = True, ""
        if not every:
            return 0
        stop.wait(every)
    return 0


def stop_on_sigterm() -> threading.Event:
    """An event SIGTERM sets, so that a loop ends between two steps, never inside a database write.

    Raising from the handler could land while a SQLite write transaction was open; the cleanup that followed
    then waited on that transaction's lock for the 30 s busy timeout. A second SIGTERM still interrupts at once."""
    stop = threading.Event()

    def handle(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    return stop
