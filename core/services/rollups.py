"""Recomputing the rollups from raw conversations: a change of state like any other (permission, audit, commit)."""
from __future__ import annotations

from datetime import datetime

from core import audit, rollups
from core.auth import Actor, Permission
from core.errors import UserInputError
from core.models import utcnow
from core.services.guard import require
from core.uow import UnitOfWork


def rebuild_rollups(*, actor: Actor, uow: UnitOfWork, since: datetime | None = None) -> int:
    """Recompute the hourly and daily rollups from conversations created since SINCE (all when None); rows written."""
    target = since.date().isoformat() if since else "all"
    if since is not None and since > utcnow():
        raise UserInputError(f"--since {target} is in the future: there is nothing to rebuild after it.")
    with uow:
        require(uow, actor, Permission.CONTROL_SYSTEM, action="rollups.rebuild", target=target)
        rows = rollups.rebuild(uow.session, since=since)
        audit.append(uow.session, actor=actor, action="rollups.rebuild", target=target, after={"rows": rows})
        uow.commit()
    return rows
