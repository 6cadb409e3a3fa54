"""The agent system's status for the API and the CLI: mode, types, instances, the last hour."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.models import AGENT_TYPES, AgentInstance
from core.queries.metrics import get_summary
from core.queries.scope import require_read, shop_filter
from core.queries.settings import as_workers_see_it
from core.read_routing import route_of


def get_status(session: Session, *, actor: Actor, figures: Session | None = None) -> dict[str, Any]:
    """Activation mode and scope, state per agent type, instances by status, and the last hour from the rollups.

    The switch and the instances come from SESSION (the primary); the last hour's figures may come from FIGURES,
    a session on the read replica, since a moment's lag does not change them in any way that matters."""
    require_read(actor, Permission.VIEW_HEALTH)
    state = as_workers_see_it(session)[0]  # the workers' own AGENT_SYSTEM_ENABLED, not this process's
    i = AgentInstance
    rows = session.execute(select(i.agent_type, i.status, func.count()).where(*shop_filter(actor, i.shop_id))
                           .group_by(i.agent_type, i.status)).all()
    by_status: dict[str, int] = {}
    per_type: dict[str, dict[str, int]] = {t: {} for t in AGENT_TYPES}
    for agent_type, status, n in rows:
        by_status[status] = by_status.get(status, 0) + n
        per_type.setdefault(agent_type, {})[status] = n
    hour = get_summary(figures or session, actor=actor, window_hours=1)
    return {
        "activation": state.as_dict(),
        "agent_types": {t: {"enabled": t not in state.disabled_agent_types, "instances": per_type.get(t, {})}
                        for t in AGENT_TYPES},
        "instances_by_status": by_status,
        "last_hour": {"since": hour.since.isoformat(), "conversations": hour.conversations, "by_status": hour.by_status,
                      "p95_response_ms": hour.p95_response_ms, "error_rate": hour.error_rate,
                      "read_from": route_of(figures or session).read_from},
        "scope": "all shops" if actor.shop_ids is None else sorted(actor.shop_ids),
    }
