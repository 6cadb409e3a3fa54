"""`check`: the live staging checklist from a shell or a deploy pipeline (exit 0 go, 1 no-go, 2 bad input)."""
from __future__ import annotations

import argparse
import json

from core.checklist.catalogue import ITEMS, SECTIONS, get_item, runnable
from core.checklist.report import to_json, to_markdown
from core.checklist.runner import ItemResult
from core.cli.common import actor_from_args, audited_read, row_id
from core.config import get_settings
from core.db import get_engine
from core.errors import UserInputError
from core.queries import checklist as q
from core.services import checklist as svc
from core.text import counted
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check", help="run the staging checklist's automated items; exit 0 go, 1 no-go, 2 bad input",
                       description="Without a subcommand: run the automated items (all, one --section, or one "
                                   "--item) for this environment and --release, record them, and print the verdict.")
    _selection(c)
    c.add_argument("--json", action="store_true", help="print the results and verdict as JSON")
    c.add_argument("--confirm", help="production only: type 'production' to allow the kill-switch dry run")
    c.set_defaults(func=run)
    cs = c.add_subparsers(dest="check_command")
    r = cs.add_parser("report", help="a run as Markdown (for the retrospective) or JSON")
    r.add_argument("run_id", type=row_id, metavar="RUN")
    r.add_argument("--format", choices=["md", "json"], default="md")
    r.set_defaults(func=report)
    t = cs.add_parser("tick", help="mark a manual item done, with a note")
    t.add_argument("item")
    t.add_argument("--note", default="")
    _release(t)
    t.set_defaults(func=tick)
    w = cs.add_parser("waive", help="accept an item as it is, for a reason")
    w.add_argument("item")
    w.add_argument("--reason", required=True)
    _release(w)
    w.set_defaults(func=waive)
    s = cs.add_parser("sign-off", help="sign the run off (a go, nothing open)")
    s.add_argument("--note", default="")
    _release(s)
    s.set_defaults(func=sign_off)
    d = cs.add_parser("deployed", help="mark the release deployed now: the post-deployment windows count from here")
    _release(d)
    d.set_defaults(func=deployed)
    ls = cs.add_parser("list", help="sections and items with their ids")
    ls.set_defaults(func=list_items)


def _release(p: argparse.ArgumentParser) -> None:
    p.add_argument("--release", help="the release (default: RELEASE_ID); the environment is the deployment's")


def _selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--section", help="only this section (see `check list`)")
    p.add_argument("--item", help="only this item (see `check list`)")
    _release(p)


def _run_id(args: argparse.Namespace) -> int:
    """The run of this environment and --release, started now if there is none (running the checks starts it)."""
    return svc.start_run(actor=actor_from_args(args), uow=UnitOfWork(get_engine()), release=args.release).id


def _existing_run_id(args: argparse.Namespace) -> int:
    """The run of this environment and --release, which must have been started: a tick, waiver, deployment mark or
    sign-off on a mistyped release would otherwise start a run of its own (and a refused sign-off leave it)."""
    actor, settings = actor_from_args(args), get_settings()
    release = q.release_named(args.release)
    row = audited_read(actor, "checklist.read", lambda s: q.find_run(s, actor=actor, environment=settings.environment,
                                                                     release=release))
    if row is None:
        raise UserInputError(f"No checklist run for {settings.environment}, release {release!r}: start it with "
                             f"`python -m core check --release {release}` (it runs the automated items) or on the "
                             "Checklist page.")
    return row.id


def _print_result(result: ItemResult) -> None:
    ev = result.evidence
    print(f"{result.status.upper():8} {result.item_id:28} {ev.get('detail', '')}", flush=True)


def run(args: argparse.Namespace) -> int:
    selected = runnable(args.section, args.item)  # bad input: one sentence, exit 2, nothing written
    actor = actor_from_args(args)
    run_id = _run_id(args)
    results = svc.run_checks(actor=actor, run_id=run_id, uow=UnitOfWork(get_engine()), section=args.section,
                             item_id=args.item, confirm=args.confirm, on_result=None if args.json else _print_result)
    state = audited_read(actor, "checklist.read", lambda s: q.get_run_state(s, actor=actor, run_id=run_id))
    ids = {i.id for i in selected}
    blocking = [s for s in state.blocking if s.item.id in ids]
    verdict = "NO-GO: " + "; ".join(f"{s.item.title} ({s.status})" for s in blocking) if blocking else \
        f"GO for the {counted(len(ids), 'selected item')}"
    if args.json:
        print(json.dumps({"run": run_id, "environment": state.environment, "release": state.release,
                          "go": not blocking, "verdict": verdict, "blocking": [s.item.id for s in blocking],
                          "results": [r.__dict__ for r in results]}, indent=2, default=str))
    else:
        print(f"run {run_id} ({state.environment}, release {state.release}): {verdict}")
    return 1 if blocking else 0


def report(args: argparse.Namespace) -> int:
    actor = actor_from_args(args)
    state = audited_read(actor, "checklist.read", lambda s: q.get_run_state(s, actor=actor, run_id=args.run_id))
    print(to_markdown(state) if args.format == "md" else to_json(state), end="" if args.format == "md" else "\n")
    return 0


def tick(args: argparse.Namespace) -> int:
    get_item(args.item)  # bad input: one sentence before anything is written
    run_id = _existing_run_id(args)
    svc.tick_item(actor=actor_from_args(args), run_id=run_id, item_id=args.item, note=args.note,
                  uow=UnitOfWork(get_engine()))
    print(f"run {run_id}: {args.item} ticked")
    return 0


def waive(args: argparse.Namespace) -> int:
    get_item(args.item)
    if not args.reason.strip():
        raise UserInputError("A reason is required to waive an item.")
    run_id = _existing_run_id(args)
    svc.waive_item(actor=actor_from_args(args), run_id=run_id, item_id=args.item, reason=args.reason,
                   uow=UnitOfWork(get_engine()))
    print(f"run {run_id}: {args.item} waived")
    return 0


def sign_off(args: argparse.Namespace) -> int:
    run_id = _existing_run_id(args)
    view = svc.sign_off(actor=actor_from_args(args), run_id=run_id, note=args.note, uow=UnitOfWork(get_engine()))
    print(f"run {view.id} ({view.environment}, release {view.release}) signed off")
    return 0


def deployed(args: argparse.Namespace) -> int:
    run_id = _existing_run_id(args)
    svc.mark_deployed(actor=actor_from_args(args), run_id=run_id, uow=UnitOfWork(get_engine()))
    print(f"run {run_id}: release marked deployed now; the post-deployment windows count from here")
    return 0


def list_items(args: argparse.Namespace) -> int:
    for section in SECTIONS:
        print(f"{section.key}: {section.title}")
        for item in (i for i in ITEMS if i.section == section.key):
            kind = "auto  " if item.automated else "manual"
            print(f"  {item.id:28} {kind} {'' if item.blocking else '(informs) '}{item.title}")
    return 0
