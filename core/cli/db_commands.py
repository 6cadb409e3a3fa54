"""`db setup | verify | cleanup | restore` and `seed`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import actor_from_args, whole
from core.config import get_settings, mask_url
from core.db import get_engine, may_create_database
from core.errors import UserInputError
from core.seed.runner import seed, seed_demo_users
from core.services import schema
from core.uow import UnitOfWork


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="create, verify, clean up and restore the agent tables")
    dsub = db.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("setup", help="migrate DATABASE_URL to the newest revision (safe to run twice)").set_defaults(func=setup)
    dsub.add_parser("verify", help="list the agent tables and do a write/read round trip").set_defaults(func=verify)
    c = dsub.add_parser("cleanup", help="back up, then drop only the agent tables")
    c.add_argument("--yes", action="store_true", help="really drop them")
    c.add_argument("--confirm", help="the environment name, required in production")
    c.set_defaults(func=cleanup)
    r = dsub.add_parser("restore", help="put back the agent tables from a cleanup backup")
    r.add_argument("path", type=Path)
    r.add_argument("--from-another-database", action="store_true",
                   help="the backup was written from another database (another file, cluster or environment)")
    r.set_defaults(func=restore)
    s = sub.add_parser("seed", help="write demo or load data")
    s.add_argument("--test-data", dest="size", default="demo", help="minimal | demo | load")
    s.add_argument("--conversations", type=whole(0, 100_000_000))
    s.add_argument("--days", type=whole(1, 3650))
    s.set_defaults(func=run_seed)


def setup(args: argparse.Namespace) -> int:
    may_create_database()
    engine = get_engine()
    before, after, recreated = schema.setup_database(actor=actor_from_args(args), engine=engine)
    where = f"{mask_url(get_settings().database_url)} ({get_settings().environment})"
    if before == after and not recreated:
        print(f"{where}: already at revision {after}; nothing to do.")
    else:
        print(f"{where}: migrated from {before or 'empty'} to {after}."
              + (f" Recreated {', '.join(recreated)}." if recreated else ""))
    return 0


def verify(args: argparse.Namespace) -> int:
    report = schema.verify_database(get_engine())
    for table in report.present:
        print(f"  ok       {table}")
    for table in report.missing:
        print(f"  MISSING  {table}")
    print(f"revision {report.revision or 'none'} (code: {report.head})")
    if report.round_trip_ms is not None:
        print(f"write/read round trip: {report.round_trip_ms:.1f} ms")
    for problem in report.problems:
        print(f"error: {problem}")
    return 0 if report.ok else 1


def cleanup(args: argparse.Namespace) -> int:
    engine = get_engine()
    counts = schema.table_counts(engine)
    for table, n in counts.items():
        print(f"  {table:28} {n:>10,} rows")
    if not args.yes:
        raise UserInputError("Nothing dropped: add --yes to back up and drop the agent tables listed above.")
    path, _ = schema.cleanup_agent_tables(actor=actor_from_args(args), uow=UnitOfWork(engine), confirm=args.confirm)
    print(f"backup written to {path}")
    print(f"dropped {len(counts)} agent tables; shops, clients and users are untouched.")
    print(f"restore with: python -m core db restore {path}")
    return 0


def restore(args: argparse.Namespace) -> int:
    report = schema.restore_agent_tables(actor=actor_from_args(args), uow=UnitOfWork(get_engine()), path=args.path,
                                         from_another_database=args.from_another_database)
    print(f"restored {sum(report.counts.values()):,} rows into {len(report.counts)} tables from {args.path} "
          f"(sha256 {report.file_sha256})")
    had = f" (the backup had mode {report.mode_in_backup})" if report.mode_in_backup not in (None, "off") else ""
    print(f"The agent system is OFF after the restore{had}, at settings version {report.settings_version}; "
          "switch it on with `python -m core activate --mode limited|full --reason …`.")
    return 0


def run_seed(args: argparse.Namespace) -> int:
    engine, actor = get_engine(), actor_from_args(args)
    try:
        report = seed(actor=actor, engine=engine, size=args.size, conversations=args.conversations, days=args.days,
                      progress=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        # The seed commits in steps (shops, clients and instances first): say what may be left behind.
        print("seed interrupted: the database may hold part of it (the shops, clients and agent instances, or "
              "conversations whose figures are not rolled up yet); `python -m core rollups rebuild` recomputes the "
              "figures, and a new seed adds to what is there rather than finishing this one.", file=sys.stderr)
        return 130
    print(f"seeded {report.shops} shops, {report.clients:,} clients, {report.conversations:,} conversations, "
          f"{report.messages:,} messages in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)")
    for user, role, password in seed_demo_users(actor=actor, engine=engine):
        print(f"demo sign-in: {user} / {password} ({role})")
    return 0
