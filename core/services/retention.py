"""Dropping old months of raw conversations (`python -m core retention`): permission, safety, drop, audit, commit."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from core import audit, retention
from core.auth import Actor, Permission
from core.errors import Conflict, NotFound, UserInputError
from core.models import utcnow
from core.services.guard import require
from core.uow import UnitOfWork

ACTION = "retention.drop"


@dataclass
class RetentionResult:
    """The months before the cutoff, each with its rows and problems; DROPPED when they are gone."""

    keep_months: int
    cutoff: datetime
    months: list[retention.MonthReport]
    dropped: bool

    def as_dict(self) -> dict[str, Any]:
        return {"keep_months": self.keep_months, "keeps_from": self.cutoff.date().isoformat(),
                "dropped": self.dropped, "months": [m.as_dict() for m in self.months],
                "conversations": sum(m.conversations for m in self.months),
                "messages": sum(m.messages for m in self.months)}


def apply_retention(*, actor: Actor, uow: UnitOfWork, keep_months: int, dry_run: bool = False,
                    now: datetime | None = None) -> RetentionResult:
    """Drop the raw rows of months older than the KEEP_MONTHS before the current one, when every such month is
    safe (core.retention.check_month); with DRY_RUN, only say what would go and what stands in the way."""
    if keep_months < 1:
        raise UserInputError("--keep-months must be 1 or more (the current month is always kept).")
    start = retention.cutoff(now or utcnow(), keep_months)
    target = f"before {start.date().isoformat()}"
    with uow:
        require(uow, actor, Permission.ROLLBACK, action=ACTION, target=target)
        conn = uow.session.connection()
        reports = [retention.check_month(conn, m) for m in retention.old_months(conn, start)]
        result = RetentionResult(keep_months, start, reports, dropped=False)
        if dry_run:
            return result
        if not reports:
            raise NotFound(f"Nothing to drop: no conversations were created {target} (keeping {keep_months} "
                           "months and the current one).")
        unsafe = [m for m in reports if m.problems]
        if unsafe:
            why = "; ".join(f"{m.month}: {', '.join(m.problems)}" for m in unsafe)
            uow.session.rollback()
            audit.append(uow.session, actor=actor, action=ACTION, target=target, outcome="refused", reason=why)
            uow.commit()
            raise Conflict(f"Nothing dropped: not every month is safe to drop ({why}).")
        if conn.dialect.name == "postgresql":  # a detach waits for the table's readers; never stall the worker
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
        for month in retention.old_months(conn, start):  # the same months: the checks ran in this transaction
            retention.drop_month(conn, month)
        result.dropped = True
        audit.append(uow.session, actor=actor, action=ACTION, target=target,
                     before={"months": [m.month for m in reports]}, after=result.as_dict())
        uow.commit()
    return result
