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


class NotReady(AgentOpsError):
    """The database exists but its schema is missing or behind."""

    http_status = 503
