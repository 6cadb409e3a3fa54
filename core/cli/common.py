"""Helpers shared by the CLI commands: the acting user, parsing, printing."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.auth import Actor, system_actor
from core.db import get_engine, read_session
from core.errors import NotFound, UserInputError
from core.queries.users import actor_for_user, get_user_by_name


def actor_from_args(args: argparse.Namespace) -> Actor:
    """The --actor user (their role applies), or the operator at the shell."""
    name = getattr(args, "actor", None)
    if not name:
        return system_actor("cli")
    return load_actor(name, source="cli")


def load_actor(username: str, *, source: str) -> Actor:
    """The acting user NAME as stored (role and shops), refusing disabled users."""
    with read_session(get_engine()) as s:
        user = get_user_by_name(s, username)
        if user is None or user.disabled:
            raise NotFound(f"No active user named {username!r}.")
        return actor_for_user(s, user, source=source)


def id_list(value: str) -> list[int]:
    """Parse '1,2,3' into ints, with a clear error."""
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 1,2 (got {value!r})") from None


def name_list(value: str) -> list[str]:
    """Parse 'a,b' into a list of names."""
    return [v.strip() for v in value.split(",") if v.strip()]


def emit(data: Any, *, as_json: bool, text: str) -> None:
    """Print DATA as JSON or TEXT for people."""
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def read_password(prompt: str) -> str:
    """A password from stdin when piped, else from a hidden prompt (typed twice)."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise UserInputError("No password on standard input.")
        return password
    import getpass

    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise UserInputError("The two passwords differ.")
    return first
