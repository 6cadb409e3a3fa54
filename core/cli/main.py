"""Argument parsing and the one place where errors become a sentence and an exit code."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from sqlalchemy.exc import OperationalError, ProgrammingError

from core.cli import admin_commands, control_commands, db_commands
from core.config import SettingsError, get_settings, reset_settings
from core.errors import AgentOpsError, UserInputError, describe_database_error

COMMAND_MODULES = [db_commands, admin_commands, control_commands]
STRICTNESS = {"development": 0, "staging": 1, "production": 2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="BookedBarber V2 agent system operations.")
    parser.add_argument("--environment", choices=list(STRICTNESS),
                        help="the checklist's --environment=staging: may repeat or raise the deployment's ENVIRONMENT, "
                             "never lower it")
    parser.add_argument("--actor", help="act as this console user (their role applies; outside development proven by "
                                        "AGENTOPS_TOKEN); default: the shell operator")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    for module in _optional_modules():
        module.register(sub)
    return parser


def _optional_modules() -> list:
    """Command groups that live beside the core ones (worker, API, metrics), imported lazily."""
    from core.cli import api_commands, metrics_commands, review_commands, rollback_commands, runtime_commands

    # review_commands after runtime_commands: it extends the `conversations` group that one creates.
    return [runtime_commands, metrics_commands, api_commands, rollback_commands, review_commands]


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


def _apply_environment(wanted: str | None) -> None:
    """The environment comes from the deployment; the flag may repeat it or make a command stricter, never laxer."""
    deployed = get_settings().environment
    if wanted is None or wanted == deployed:
        return
    if STRICTNESS[wanted] < STRICTNESS[deployed]:
        raise UserInputError(f"--environment {wanted} would lower this deployment's environment ({deployed}); "
                             "the flag may only repeat or raise it.")
    os.environ["ENVIRONMENT"] = wanted
    reset_settings()


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = build_parser().parse_args(_hoist_global_options(list(sys.argv[1:] if argv is None else argv)))
    try:
        _apply_environment(args.environment)
        settings = get_settings()
        logging.basicConfig(level=settings.agent_log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that has gone is met here, not at interpreter exit
        return code
    except BrokenPipeError:
        _discard_stdout()
        return 1
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AgentOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OperationalError, ProgrammingError) as exc:
        print(f"error: {describe_database_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """The reader of our output has gone (`| head -1`): nobody is left to tell, so finish quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (tests capture it)
