"""Reading the audit trail: filtered, newest first, for the Audit page, its CSV export and the CLI."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.models import AuditRecord
from core.queries.scope import require_read

COLUMNS = ["seq", "created_at", "actor", "actor_role", "source", "action", "target", "outcome", "reason", "before",
           "after"]


def list_audit(session: Session, *, actor: Actor, who: str = "", action: str = "", target: str = "",
               outcome: str = "", since: datetime | None = None, until: datetime | None = None,
               limit: int = 500) -> tuple[list[dict[str, Any]], int]:
    """Records matching the filters (newest first, at most LIMIT) and how many match in all."""
    require_read(actor, Permission.READ_AUDIT)
    a = AuditRecord
    where = []
    if who.endswith("*"):  # 'system*': every system actor; '%' and '_' typed are matched as themselves
        where.append(a.actor.istartswith(who[:-1], autoescape=True))
    elif who:  # exactly: 'po' matched every record of 'support' too
        where.append(a.actor == who)
    if action:
        where.append(a.action.istartswith(action, autoescape=True))
    if target:
        where.append(a.target.icontains(target, autoescape=True))
    if outcome:
        where.append(a.outcome == outcome)
    if since:
        where.append(a.created_at >= since)
    if until:
        where.append(a.created_at < until)
    total = session.scalar(select(func.count()).select_from(a).where(*where))
    rows = session.scalars(select(a).where(*where).order_by(a.seq.desc()).limit(limit)).all()
    return [{c: getattr(r, c) for c in COLUMNS} for r in rows], int(total or 0)


def distinct_actions(session: Session, *, actor: Actor) -> list[str]:
    """Every action name seen, for the filter's choices."""
    require_read(actor, Permission.READ_AUDIT)
    return list(session.scalars(select(AuditRecord.action).distinct().order_by(AuditRecord.action)))
