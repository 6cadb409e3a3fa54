"""Helpers shared by the CLI commands: the acting user, parsing, printing."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from core.auth import Actor, anonymous_actor, system_actor
from core.config import get_settings
from core.db import get_engine, read_session
from core.errors import NotFound, PermissionDenied, UserInputError
from core.inputs import MAX_BIGINT, MAX_INT, finite_number, whole_number
from core.queries.users import actor_for_user, get_user_by_name
from core.services.guard import record_refusal
from core.services.sessions import resume_session
from core.services.tokens import authenticate_token
from core.uow import UnitOfWork

T = TypeVar("T")


def actor_from_args(args: argparse.Namespace) -> Actor:
    """The --actor user (their role applies), or the operator at the shell."""
    name = getattr(args, "actor", None)
    if not name:
        return system_actor("cli")
    return load_actor(name, source="cli")


def load_actor(username: str, *, source: str) -> Actor:
    """The acting user NAME as stored (role and shops), refusing disabled users.

    Outside development a name is not enough: AGENTOPS_TOKEN must hold that user's own API token or console
    session token, so nobody at a shell can act (or approve) as someone else. A refusal is audited."""
    settings, engine = get_settings(), get_engine()
    with read_session(engine) as s:
        user = get_user_by_name(s, username)
        if user is None or user.disabled:
            raise NotFound(f"No active user named {username!r}.")
        if settings.environment == "development":
            return actor_for_user(s, user, source=source)
    token = settings.agentops_token.get_secret_value() if settings.agentops_token else ""
    proven = _proven_by(engine, token)
    if proven is not None and proven.username == user.username:
        return replace(proven, source=source)
    why = "no AGENTOPS_TOKEN" if not token else ("a token of another user" if proven else "an invalid token")
    record_refusal(actor=anonymous_actor(username, source), action="cli.actor", target=username,
                   reason=f"--actor {username} in {settings.environment} with {why}", uow=UnitOfWork(engine))
    raise PermissionDenied(f"Outside development --actor {username} must be proven: set AGENTOPS_TOKEN to "
                           f"{username}'s own API token or console session token.")


def _proven_by(engine, token: str) -> Actor | None:  # noqa: ANN001 - an Engine
    """The user behind an API token or a console session token, or None."""
    if not token:
        return None
    with read_session(engine) as s:
        actor = authenticate_token(s, token)
    if actor is None:
        signed = resume_session(token=token, uow=UnitOfWork(engine))
        actor = signed.actor if signed else None
    return actor


def audited_read(actor: Actor, action: str, read: Callable[[Session], T]) -> T:
    """READ in a read session; a refusal (PermissionDenied) is audited before it is raised, like a service's."""
    try:
        with read_session(get_engine()) as s:
            return read(s)
    except PermissionDenied as exc:
        record_refusal(actor=actor, action=action, target="", reason=str(exc), uow=UnitOfWork(get_engine()))
        raise


def id_list(value: str) -> list[int]:
    """Parse '1,2,3' into ids, with a clear error."""
    try:
        return [whole_number(v, "each") for v in value.split(",") if v.strip()]
    except UserInputError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids such as 1,2, each from 1 to {MAX_INT:,} "
                                         f"(got {value!r})") from None


def _argument(check: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type made of a core check: its UserInputError becomes argparse's one-line error and exit 2."""
    def parse(value: str) -> T:
        try:
            return check(value)
        except UserInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from LOW to HIGH (a count, a limit, days, a port)."""
    return _argument(lambda v: whole_number(v, "the value", low=low, high=high))


def seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: seconds from LOW to HIGH ('nan', 'inf' and negatives are refused)."""
    return _argument(lambda v: finite_number(v, "the seconds", low=low, high=high))


# Id arguments (a conversation, alert, token, run…: no row id is larger), and shop or enterprise ids.
row_id = _argument(lambda v: whole_number(v, "the id", high=MAX_BIGINT))
shop_id = _argument(lambda v: whole_number(v, "the id"))


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
