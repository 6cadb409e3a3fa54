"""What the Controls page shows: propagation of a change, what a kill would touch, rollback triggers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.config import get_settings
from core.models import AgentInstance, AuditRecord, Conversation, Shop, WorkerHeartbeat, utcnow
from core.queries.health import db_query_p95, live_worker_conditions
from core.queries.scope import require_read, shop_filter
from core.text import counted

# Refused reads of client data outside one's scope: the checklist's "unauthorized data access". A page opened
# without the role (a stale link, a menu slip) is audited as "page.open" refused, and does not count.
DATA_ACCESS_ACTIONS = ("conversation.read", "client.read", "transcript.read")


@dataclass(frozen=True)
class Propagation:
    version: int
    changed_at: datetime
    acknowledged: list[str]
    waiting: list[str]
    seconds: float | None  # from the change to the last acknowledgement, once every live worker has it

    @property
    def complete(self) -> bool:
        return not self.waiting

    def sentence(self) -> str:
        total = len(self.acknowledged) + len(self.waiting)
        if total == 0:
            return f"No worker is running; version {self.version} will apply when one starts."
        took = f" in {self.seconds:.1f} s" if self.complete and self.seconds is not None else ""
        text = f"{len(self.acknowledged)} of {counted(total, 'worker')} acknowledged version {self.version}{took}"
        return text + (f"; waiting for {', '.join(self.waiting)}" if self.waiting else "")


def get_propagation(session: Session, *, actor: Actor, version: int, changed_at: datetime) -> Propagation:
    """Which live workers have seen settings VERSION, and how long the last one took."""
    require_read(actor, Permission.VIEW_HEALTH)
    beats = session.scalars(select(WorkerHeartbeat).where(*live_worker_conditions(utcnow()))).all()
    acked = [b for b in beats if b.settings_version >= version]
    waiting = sorted(b.id for b in beats if b.settings_version < version)
    seen = [b.settings_seen_at for b in acked if b.settings_seen_at is not None]
    seconds = max(0.0, (max(seen) - changed_at).total_seconds()) if seen and not waiting else None
    return Propagation(version, changed_at, sorted(b.id for b in acked), waiting, seconds)


def preview_kill(session: Session, *, actor: Actor) -> dict[str, Any]:
    """What switching off would touch: conversations in flight, pending ones by type, shops affected."""
    require_read(actor, Permission.CONTROL_SYSTEM)
    c = Conversation
    in_flight = session.scalar(select(func.count()).where(c.status == "in_progress"))
    pending = dict(session.execute(select(c.agent_type, func.count()).where(c.status == "pending")
                                   .group_by(c.agent_type)).all())
    shops = session.scalar(select(func.count(distinct(c.shop_id))).where(c.status.in_(("pending", "in_progress"))))
    return {"in_flight": int(in_flight or 0), "pending_by_type": {k: int(v) for k, v in pending.items()},
            "shops_affected": int(shops or 0)}


def list_shop_names(session: Session, *, actor: Actor) -> dict[int, str]:
    """Shop id → 'name (#id)' for the pickers, limited to ACTOR's shops."""
    require_read(actor, Permission.VIEW_HEALTH)
    rows = session.execute(select(Shop.id, Shop.name).where(*shop_filter(actor, Shop.id)).order_by(Shop.id))
    return {i: f"{name} (#{i})" for i, name in rows}


def list_instances(session: Session, *, actor: Actor) -> list[dict[str, Any]]:
    """Every agent instance ACTOR may manage, with its status, by shop and agent type."""
    require_read(actor, Permission.MANAGE_INSTANCES)
    i = AgentInstance
    rows = session.execute(select(i.id, i.shop_id, i.agent_type, i.status).where(*shop_filter(actor, i.shop_id))
                           .order_by(i.shop_id, i.agent_type))
    return [{"id": r.id, "shop": r.shop_id, "agent type": r.agent_type, "status": r.status} for r in rows]


@dataclass(frozen=True)
class Trigger:
    key: str
    label: str
    value: float | None
    threshold: float
    fired: bool
    detail: str
    unit: str = ""

    def said(self) -> str:
        """'Database query time p95 (last hour) = 254.1 ms (limit 200 ms)': a unit, and no third decimal."""
        return f"{self.label} = {self.shown(self.value)} (limit {self.shown(self.threshold)})"

    def shown(self, figure: float | None) -> str:
        """FIGURE with the trigger's unit and at most one decimal ('254.1 ms', '2,048 MB', '0'); 'no data' for None."""
        if figure is None:
            return "no data"
        return f"{figure:,.1f}".removesuffix(".0") + (f" {self.unit}" if self.unit else "")


def evaluate_rollback_triggers(session: Session, *, actor: Actor, now: datetime | None = None) -> list[Trigger]:
    """The checklist's rollback triggers against live data: query time, memory, unauthorized access."""
    require_read(actor, Permission.VIEW_HEALTH)
    s, now = get_settings(), now or utcnow()
    query_p95 = db_query_p95(session, since=now - timedelta(hours=1))
    memory = session.scalar(select(func.max(WorkerHeartbeat.rss_mb)).where(*live_worker_conditions(now)))
    a = AuditRecord
    refused = session.execute(select(a.actor, a.action, a.target).where(
        a.outcome == "refused", a.action.in_(DATA_ACCESS_ACTIONS), a.created_at >= now - timedelta(hours=24))
        .order_by(a.seq.desc()).limit(5)).all()
    n_refused = session.scalar(select(func.count()).where(
        a.outcome == "refused", a.action.in_(DATA_ACCESS_ACTIONS), a.created_at >= now - timedelta(hours=24)))
    return [
        Trigger("query_time", "Database query time p95 (last hour)", query_p95, s.rb_query_ms,
                query_p95 is not None and query_p95 > s.rb_query_ms, f"goal: at most {s.rb_query_ms:g} ms", "ms"),
        Trigger("memory", "Worker memory (largest live worker)", memory, s.rb_memory_mb,
                memory is not None and memory > s.rb_memory_mb, f"goal: at most {s.rb_memory_mb:g} MB", "MB"),
        Trigger("unauthorized", "Unauthorized data access attempts (24 h)", float(n_refused or 0),
                float(s.rb_unauthorized_max), (n_refused or 0) > s.rb_unauthorized_max,
                "; ".join(f"{r.actor}: {r.action} {r.target}" for r in refused) or "none"),
    ]
