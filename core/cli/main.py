"""Argument parsing and the one place where errors become a sentence and an exit code."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Every command group: name → (module that registers it, help). `--help` lists them from here, and a command
# imports only its own module, so `python -m core status` never loads alembic, openai or the seed generator.
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("core.cli.db_commands", "create, verify, clean up and restore the agent tables"),
    "seed": ("core.cli.db_commands", "write demo or load data"),
    "users": ("core.cli.admin_commands", "console users"),
    "templates": ("core.cli.admin_commands", "agent templates"),
    "rollups": ("core.cli.admin_commands", "hourly rollups"),
    "audit": ("core.cli.admin_commands", "the audit trail"),
    "config": ("core.cli.admin_commands", "show the settings in force (secrets masked)"),
    "status": ("core.cli.control_commands", "activation mode, scope and kill-switch state"),
    "kill": ("core.cli.control_commands", "engage the kill switch: no new conversation starts"),
    "activate": ("core.cli.control_commands",
                 "activate with limited or full scope (the checklist's ACTIVATE_AGENTS_V2.sh)"),
    "agent-type": ("core.cli.control_commands", "disable or enable one agent type"),
    "worker": ("core.cli.runtime_commands",
               "hold agent conversations until stopped (SIGTERM/SIGINT stop it cleanly)"),
    "conversations": ("core.cli.review_commands", "list, show and enqueue conversations"),
    "review": ("core.cli.review_commands", "review queues, ratings and flags"),
    "probe": ("core.cli.runtime_commands", "probe the health endpoints and time the dashboard queries"),
    "metrics": ("core.cli.metrics_commands", "agent health over a window: volume, status, error rate, p95, criteria"),
    "replica": ("core.cli.metrics_commands", "the read replica (DATABASE_READ_URL): reachable?, lag"),
    "api": ("core.cli.api_commands", "serve the agent API (health, status, activation)"),
    "tokens": ("core.cli.api_commands", "API tokens"),
    "rollback": ("core.cli.rollback_commands", "the checklist's rollbacks"),
    "alerts": ("core.cli.alert_commands", "alert rules, the evaluator, silences, acknowledgements, notifications"),
    "retention": ("core.cli.retention_commands", "drop raw conversations of old months once their rollups are safe"),
    "check": ("core.cli.check_commands",
              "run the staging checklist's automated items; exit 0 go, 1 no-go, 2 bad input"),
}
STRICTNESS = {"development": 0, "staging": 1, "production": 2}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with COMMAND, only that command's module is imported (the others are listed by name)."""
    parser = argparse.ArgumentParser(prog="python -m core", description="BookedBarber V2 agent system operations.")
    parser.add_argument("--environment", choices=list(STRICTNESS),
                        help="the checklist's --environment=staging: may repeat or raise the deployment's ENVIRONMENT, "
                             "never lower it")
    parser.add_argument("--actor", help="act as this console user (their role applies; outside development proven by "
                                        "AGENTOPS_TOKEN); default: the shell operator")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = list(dict.fromkeys(m for m, _ in COMMANDS.values())) if command is None else \
        ([COMMANDS[command][0]] if command in COMMANDS else [])
    registered: set[str] = set()
    for name in modules:
        before = set(sub.choices)
        importlib.import_module(name).register(sub)
        registered |= set(sub.choices) - before
    for name, (_, help_text) in COMMANDS.items():
        if name not in registered:  # listed in --help; parsing it would need its module (not the case here)
            sub.add_parser(name, help=help_text)
    _name_subcommands(parser)
    return parser


def _name_subcommands(parser: argparse.ArgumentParser) -> None:
    """A missing subcommand is named by its choices ("required: {disable,enable}"), not by the internal name the
    code reads it under ("required: t")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.metavar = action.metavar or "{" + ",".join(action.choices) + "}"
            for child in action.choices.values():
                _name_subcommands(child)


def _command_of(argv: list[str]) -> str | None:
    """The command word in ARGV (after the hoisted global options), or None when there is none."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.split("=", 1)[0] in GLOBAL_OPTIONS:
            i += 1 if "=" in arg else 2
        elif arg.startswith("-"):
            i += 1
        else:
            return arg
    return None


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
    from core.config import get_settings, reset_settings
    from core.errors import UserInputError

    deployed = get_settings().environment
    if wanted is None or wanted == deployed:
        return
    if STRICTNESS[wanted] < STRICTNESS[deployed]:
        raise UserInputError(f"--environment {wanted} would lower this deployment's environment ({deployed}); "
                             "the flag may only repeat or raise it.")
    os.environ["ENVIRONMENT"] = wanted
    reset_settings()


def _check_actor(args: argparse.Namespace) -> None:
    """An --actor that is unknown, disabled or empty is refused for every command, not only those that act: a
    read run "as ghost" must not quietly run as the shell operator."""
    if args.actor is None:
        return
    from core.cli.common import actor_from_args
    from core.errors import UserInputError

    if not args.actor.strip():
        raise UserInputError("--actor needs a user name.")
    actor_from_args(args)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    argv = _hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    args = build_parser(_command_of(argv) or "").parse_args(argv)
    # Imported only now: `--help` and a mistyped command get their answer without loading the database layer.
    from sqlalchemy.exc import DatabaseError

    from core.config import SettingsError, get_settings
    from core.errors import AgentOpsError

    try:
        _apply_environment(args.environment)
        settings = get_settings()
        logging.basicConfig(level=settings.agent_log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
        _check_actor(args)
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
    except DatabaseError as exc:  # unreachable, schema missing, not a database file, a refused change
        from core.errors import describe_database_error

        print(f"error: {describe_database_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the output cannot be written (a full disk, /dev/full), a file the command needs
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or type(exc).__name__}{where}.", file=sys.stderr)
        return 1


def _discard_stdout() -> None:
    """The reader of our output has gone (`| head -1`): nobody is left to tell, so finish quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (tests capture it)
