"""`retention --keep-months N`: drop the raw conversations of old months once their rollups are safe."""
from __future__ import annotations

import argparse

from core.cli.common import actor_from_args, emit, whole
from core.errors import UserInputError


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("retention", help="drop raw conversations of old months once their rollups are safe")
    r.add_argument("--keep-months", type=whole(1, 1200), required=True,
                   help="keep the current month and this many before it (1 or more); older months go")
    r.add_argument("--dry-run", action="store_true", help="only list the months that would go, and what stops them")
    r.add_argument("--yes", action="store_true", help="really drop them")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_retention)


def run_retention(args: argparse.Namespace) -> int:
    # Imported here: `python -m core --help` lists this command without loading the database layer.
    from core.db import get_engine
    from core.services.retention import apply_retention
    from core.uow import UnitOfWork

    actor, engine = actor_from_args(args), get_engine()
    plan = apply_retention(actor=actor, uow=UnitOfWork(engine), keep_months=args.keep_months, dry_run=True)
    if args.dry_run:
        emit(plan.as_dict(), as_json=args.json, text=_text(plan.as_dict(), "would drop"))
        return 1 if any(m.problems for m in plan.months) else 0
    if not args.yes and plan.months:
        print(_text(plan.as_dict(), "would drop"))
        raise UserInputError("Nothing dropped: add --yes to drop the months listed above.")
    done = apply_retention(actor=actor, uow=UnitOfWork(engine), keep_months=args.keep_months)
    emit(done.as_dict(), as_json=args.json, text=_text(done.as_dict(), "dropped"))
    return 0


def _text(data: dict, verb: str) -> str:
    lines = [f"keeping conversations from {data['keeps_from']} ({data['keep_months']} months and the current one)"]
    for m in data["months"]:
        state = "NOT SAFE: " + "; ".join(m["problems"]) if m["problems"] else "safe"
        lines.append(f"  {m['month']}  {m['conversations']:>12,} conversations {m['messages']:>12,} messages  {state}")
    if not data["months"]:
        lines.append("  no older months hold conversations: nothing to drop")
    else:
        lines.append(f"{verb} {data['conversations']:,} conversations and {data['messages']:,} messages "
                     f"in {len(data['months'])} months")
    return "\n".join(lines)
