"""Argument parsing and the one place where errors become a sentence and an exit code."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from sqlalchemy.exc import OperationalError, ProgrammingError

from core.cli import admin_commands, control_commands, db_commands
from core.config import SettingsError, get_settings, reset_settings
from core.errors import AgentOpsError, first_line

COMMAND_MODULES = [db_commands, admin_commands, control_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="BookedBarber V2 agent system operations.")
    parser.add_argument("--environment", choices=["development", "staging", "production"],
                        help="override ENVIRONMENT for this command (the checklist's --environment=staging)")
    parser.add_argument("--actor", help="act as this console user (their role applies); default: the shell operator")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    for module in _optional_modules():
        module.register(sub)
    return parser


def _optional_modules() -> list:
    """Command groups that live beside the core ones (worker, API, metrics), imported lazily."""
    from core.cli import api_commands, metrics_commands, rollback_commands, runtime_commands

    return [runtime_commands, metrics_commands, api_commands, rollback_commands]


GLOBAL_OPTIONS = ("--environment", "--actor")


def _hoist_global_options(argv: list[str]) -> list[str]:
    """Accept --environment/--actor anywhere (the checklist writes `db setup --environment=staging`)."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            take = 1 if "=" in arg else 2
            front.extend(argv[i:i + take])
            i += take
        else:
            rest.append(arg)
            i += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = build_parser().parse_args(_hoist_global_options(list(sys.argv[1:] if argv is None else argv)))
    if args.environment:
        os.environ["ENVIRONMENT"] = args.environment
        reset_settings()
    try:
        settings = get_settings()
        logging.basicConfig(level=settings.agent_log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AgentOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OperationalError, ProgrammingError) as exc:
        print(f"error: {_database_problem(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _database_problem(exc: Exception) -> str:
    first = first_line(exc)
    if isinstance(exc, ProgrammingError) or "no such table" in first:
        return f"the database is not set up ({first}); run `python -m core db setup`"
    return f"cannot reach the database ({first}); check DATABASE_URL"
