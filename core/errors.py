"""Domain errors: each carries one sentence a person can act on."""
from __future__ import annotations


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


def first_line(exc: BaseException) -> str:
    """The first line of a (database) error's own message: what a person needs, without SQL or parameters."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
