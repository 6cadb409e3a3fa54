"""Domain errors: each carries one sentence a person can act on."""
from __future__ import annotations

import re


class AgentOpsError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 1
    http_status = 400


class UserInputError(AgentOpsError):
    """Bad input from a person (a flag, a form field, a request body)."""

    exit_code = 2
    http_status = 422


class NotFound(AgentOpsError):
    """The thing asked for does not exist (or the caller may not know it exists)."""

    http_status = 404


class PermissionDenied(AgentOpsError):
    """The acting user's role or scope does not allow this."""

    exit_code = 3
    http_status = 403


class Conflict(AgentOpsError):
    """Someone else changed the thing first; reload and try again."""

    http_status = 409


class DatabaseUnavailable(AgentOpsError):
    """The database could not be reached or answered with an error."""

    http_status = 503


class OperationFailed(AgentOpsError):
    """Something outside the person's input stopped the operation (a full disk, a failing hook); nothing was
    left half-done, and the attempt is audited."""

    http_status = 500


def describe_database_error(exc: BaseException) -> str:
    """One sentence saying what happened to the database and the way back (CLI, its loops and the console)."""
    from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

    from core.config import get_settings

    first = first_line(exc)
    if ("no such table" in first or ("relation" in first and "does not exist" in first)) and _empty_database():
        return ("This database has no tables at all: check DATABASE_URL first (is it the database you meant?); "
                "then set it up with `python -m core db setup`, or put a backup back with "
                "`python -m core db restore PATH`.")
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        return (f"The agent tables are missing ({first}): put the last backup back with "
                f"`python -m core db restore PATH` (backups are in {get_settings().backup_dir}), or start empty "
                "with `python -m core db setup`.")
    if isinstance(exc, ProgrammingError):
        return f"The database schema does not match this version ({first}): run `python -m core db setup`."
    if "unable to open database file" in first and (missing := _no_sqlite_file()):
        return missing
    if "file is not a database" in first:
        return "DATABASE_URL points at a file that is not a SQLite database: check the path."
    if isinstance(exc, (IntegrityError, DataError)):
        return f"The database refused the change ({first})."
    return (f"The database cannot be reached ({first}): check that it is running and that DATABASE_URL points at "
            "it (`python -m core db verify` tests the connection).")


def _no_sqlite_file() -> str | None:
    """The sentence for a SQLite path that holds no file (only `db setup` makes one); None when the file is there."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from core.config import get_settings

    url = make_url(get_settings().database_url)
    if url.get_backend_name() != "sqlite" or not url.database or Path(url.database).exists():
        return None
    return (f"DATABASE_URL: there is no SQLite file at {url.database}; check the path, or create the database with "
            "`python -m core db setup`.")


def _empty_database() -> bool:
    """True when the configured database holds no table at all (a mistyped SQLite path makes a new, empty file):
    then its tables are not "missing, restore a backup", they never were."""
    try:
        from sqlalchemy import inspect

        from core.db import get_engine

        return not inspect(get_engine()).get_table_names()
    except Exception:  # noqa: BLE001 - only a better sentence is at stake
        return False


def first_line(exc: BaseException) -> str:
    """The first line of a (database) error's own message: what a person needs, without SQL or parameters."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    # A database user name may be the secret itself (postgresql://TOKEN@host): the server repeats it.
    text = re.sub(r'\b(role|user) "[^"]*"', r'\1 "***"', text)
    return text.splitlines()[0] if text else type(exc).__name__
