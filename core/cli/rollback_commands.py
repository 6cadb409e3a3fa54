"""`rollback immediate | full | database …`: the checklist's rollback procedures by hand."""
from __future__ import annotations

import argparse
import time

from core.cli.common import actor_from_args, row_id, seconds
from core.db import get_engine
from core.errors import UserInputError
from core.services import rollbacks
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rollback", help="the checklist's rollbacks").add_subparsers(dest="rb", required=True)
    i = r.add_parser("immediate", help="kill switch, then wait for every worker to acknowledge (target < 5 min)")
    i.add_argument("--reason", required=True)
    i.add_argument("--wait", type=seconds(0, 3600), default=300, help="seconds to wait for acknowledgements")
    i.set_defaults(func=immediate)
    f = r.add_parser("full", help="previous release through the deploy hook (target < 15 min)")
    f.add_argument("--reason", required=True)
    f.add_argument("--yes", action="store_true", help="call the hook (without it, only show what would be called)")
    f.set_defaults(func=full)
    d = r.add_parser("database", help="agent-table cleanup (production: requested, then approved by another engineer)")
    dsub = d.add_subparsers(dest="db_rb", required=True)
    q = dsub.add_parser("request")
    q.add_argument("--confirm", required=True, help="the environment name, typed")
    q.add_argument("--reason", required=True)
    q.set_defaults(func=db_request)
    for name, fn in (("approve", db_approve), ("run", db_run)):
        p = dsub.add_parser(name)
        p.add_argument("run_id", type=row_id)
        p.set_defaults(func=fn)
    w = dsub.add_parser("withdraw", help="withdraw a request that has not run (it blocks any new one)")
    w.add_argument("run_id", type=row_id)
    w.add_argument("--reason", required=True)
    w.set_defaults(func=db_withdraw)
    r.add_parser("list", help="recent rollback runs").set_defaults(func=list_runs)


def _print_run(run: rollbacks.RunView) -> None:
    took = f"{run.duration_s:.1f} s" if run.duration_s is not None else "-"
    print(f"run {run.id} {run.kind}: {run.state}, {took} (target {run.target_s / 60:.0f} min)"
          + (f" - {run.outcome}" if run.outcome else ""))


def immediate(args: argparse.Namespace) -> int:
    actor, engine = actor_from_args(args), get_engine()
    run = rollbacks.start_immediate_rollback(actor=actor, reason=args.reason, uow=UnitOfWork(engine))
    if run.state == "already_off":
        _print_run(run)
        return 0
    print(f"kill switch engaged (settings version {run.details['settings_version']}); waiting for workers…", flush=True)
    deadline = time.monotonic() + args.wait
    while True:
        run, sentence = rollbacks.check_immediate_rollback(actor=actor, run_id=run.id, uow=UnitOfWork(engine))
        if run.state == "done" or time.monotonic() > deadline:
            print(sentence)
            _print_run(run)
            return 0 if run.state == "done" else 1
        time.sleep(0.2)


def full(args: argparse.Namespace) -> int:
    print(f"will call {rollbacks.describe_deploy_hook()}")
    if not args.yes:
        raise UserInputError("Nothing called: add --yes to run the full rollback.")
    run = rollbacks.run_full_rollback(actor=actor_from_args(args), reason=args.reason, uow=UnitOfWork(get_engine()))
    _print_run(run)
    return 0 if run.state == "done" else 1


def db_request(args: argparse.Namespace) -> int:
    run = rollbacks.request_database_rollback(actor=actor_from_args(args), reason=args.reason,
                                              typed_environment=args.confirm, uow=UnitOfWork(get_engine()))
    _print_run(run)
    if run.state == "awaiting_approval":
        print(f"a second engineer approves with: python -m core --actor NAME rollback database approve {run.id}")
    return 0


def db_approve(args: argparse.Namespace) -> int:
    _print_run(rollbacks.approve_database_rollback(actor=actor_from_args(args), run_id=args.run_id,
                                                   uow=UnitOfWork(get_engine())))
    return 0


def db_withdraw(args: argparse.Namespace) -> int:
    _print_run(rollbacks.withdraw_database_rollback(actor=actor_from_args(args), run_id=args.run_id,
                                                    reason=args.reason, uow=UnitOfWork(get_engine())))
    return 0


def db_run(args: argparse.Namespace) -> int:
    run = rollbacks.execute_database_rollback(actor=actor_from_args(args), run_id=args.run_id, uow=UnitOfWork(get_engine()))
    _print_run(run)
    return 0 if run.state == "done" else 1


def list_runs(args: argparse.Namespace) -> int:
    for run in rollbacks.list_runs(actor=actor_from_args(args), uow=UnitOfWork(get_engine())):
        _print_run(run)
    return 0
