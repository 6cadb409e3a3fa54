"""`alerts run | test | list | defaults | silence | ack`: the evaluator and the alerting actions by hand."""
from __future__ import annotations

import argparse

from sqlalchemy import select

from core.cli.common import actor_from_args, emit, row_id, seconds
from core.config import get_settings
from core.db import get_engine, read_session
from core.models import AlertRule, AlertState
from core.services import alerts
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("alerts", help="alert rules, the evaluator and notifications").add_subparsers(
        dest="alerts_command", required=True)
    r = a.add_parser("run", help="evaluate the alert rules every ALERT_EVAL_SECONDS (15) until stopped")
    r.add_argument("--once", action="store_true", help="one cycle, then send its notifications and stop")
    r.add_argument("--every", type=seconds(0.1, 86_400), help="seconds between cycles (default ALERT_EVAL_SECONDS)")
    r.set_defaults(func=run)
    t = a.add_parser("test", help="send a test notification to every contact point (or one) and say what happened")
    t.add_argument("--contact", help="the contact point's name, e.g. webhook or email")
    t.set_defaults(func=test)
    ls = a.add_parser("list", help="alerts that are pending or firing (with --all: every alert)")
    ls.add_argument("--all", action="store_true")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_alerts)
    d = a.add_parser("defaults", help="install the checklist's default rules (only when there are no rules)")
    d.set_defaults(func=defaults)
    s = a.add_parser("silence", help="silence matching alerts for a while")
    s.add_argument("--match", required=True, help="matchers, e.g. rule=error_rate,shop=1")
    s.add_argument("--minutes", type=float, required=True)
    s.add_argument("--reason", required=True)
    s.set_defaults(func=silence)
    k = a.add_parser("ack", help="acknowledge an alert: you (or --owner) own it")
    k.add_argument("alert_id", type=row_id)
    k.add_argument("--comment", default="")
    k.add_argument("--owner")
    k.set_defaults(func=ack)


def run(args: argparse.Namespace) -> int:
    from core.alerts.evaluator import release_lease
    from core.alerts.runner import Sender, evaluator_id, run_cycle
    from core.cli.runtime_commands import repeat, stop_on_sigterm
    from core.sentry import init_sentry

    settings, engine, owner = get_settings(), get_engine(), evaluator_id()
    init_sentry(settings, component="alerts")
    actor, installed = actor_from_args(args), [False]
    sender = None if args.once else Sender(engine, owner, settings)

    def once() -> None:
        if not installed[0]:
            n = alerts.install_default_rules(actor=actor, uow=UnitOfWork(engine))
            if n:
                print(f"installed {n} default alert rules", flush=True)
            installed[0] = True
        result = run_cycle(engine, owner=owner, settings=settings, deliver=args.once)
        if sender is not None:
            sender.wake.set()
        print(_describe(result), flush=True)

    stop = None
    if sender is not None:
        sender.start()
        stop = stop_on_sigterm()  # `make run` and containers stop it so: the lease is given up
    print(f"alert evaluator {owner}: every {args.every or settings.alert_eval_seconds:g} s", flush=True)
    try:
        return repeat(once, every=None if args.once else (args.every or settings.alert_eval_seconds), stop=stop)
    finally:
        if sender is not None:
            sender.stopping.set()
            sender.wake.set()
        release_lease(engine, owner=owner)


def _describe(result) -> str:
    if not result.evaluated:
        return "another evaluator holds the lease; waiting"
    moves = ", ".join(f"#{i} {a}→{b}" for i, a, b in result.transitions) or "no change"
    errors = f"; could not evaluate: {'; '.join(result.errors)}" if result.errors else ""
    return f"evaluated {result.rules} rules: {moves}; {result.queued} notifications queued{errors}"


def test(args: argparse.Namespace) -> int:
    results = alerts.send_test_notification(actor=actor_from_args(args), contact=args.contact)
    for r in results:
        tail = f"delivered after {r.attempts} attempt(s)" if r.ok else f"FAILED after {r.attempts} attempt(s): {r.error}"
        print(f"{r.contact}: {tail}")
    return 0 if all(r.ok for r in results) else 1


def list_alerts(args: argparse.Namespace) -> int:
    from core.queries.alerts import list_alerts as query

    with read_session() as s:
        rows = query(s, actor=actor_from_args(args), states=None if args.all else ("pending", "firing"))
    text = "\n".join(f"#{r['id']} {r['state']:8} {r['severity']:8} {r['rule']}: {r['name']} value {r['value']}"
                     + (f" (silenced by silence {r['silenced_by']})" if r["silenced_by"] else "")
                     + (f" (acked by {r['acked_by']})" if r["acked_by"] else "") for r in rows) or "no alerts"
    emit(rows, as_json=args.json, text=text)
    return 0


def defaults(args: argparse.Namespace) -> int:
    n = alerts.install_default_rules(actor=actor_from_args(args), uow=UnitOfWork(get_engine()))
    with read_session() as s:
        total = len(s.scalars(select(AlertRule.id)).all())
    print(f"installed {n} default rules; {total} rules in all" if n else f"rules exist already ({total}); nothing added")
    return 0


def silence(args: argparse.Namespace) -> int:
    from core.queries.alerts import silence_sentence

    actor = actor_from_args(args)
    sid = alerts.create_silence(actor=actor, matchers=args.match, minutes=args.minutes, reason=args.reason,
                                uow=UnitOfWork(get_engine()))
    with read_session() as s:
        said = silence_sentence(s, actor=actor, silence_id=sid, matchers=args.match)
    print(f"{said} It lasts {args.minutes:g} minutes.")
    return 0


def ack(args: argparse.Namespace) -> int:
    alerts.acknowledge_alert(actor=actor_from_args(args), alert_id=args.alert_id, comment=args.comment,
                             owner=args.owner, uow=UnitOfWork(get_engine()))
    with read_session() as s:
        alert = s.get(AlertState, args.alert_id)
    print(f"alert #{args.alert_id} acknowledged by {alert.acked_by}")
    return 0
