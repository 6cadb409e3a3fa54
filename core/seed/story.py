"""The demo's past incident beyond the conversations: the rollback its trigger fired, and a refused cross-shop read.

Rollback runs are plain rows written with their real times; the refused read goes through the audit log as any
refusal does (so it is recorded at seed time and feeds the 'unauthorized access' trigger for a day)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from core.auth import Actor, Role
from core.models import Conversation, RollbackRun
from core.seed.generate import Story
from core.services.guard import record_refusal
from core.uow import UnitOfWork

IMMEDIATE_TARGET_S = 5 * 60


def write_past_incident(engine: Engine, story: Story, *, shops: list[int]) -> None:
    """The immediate rollback the error-rate trigger fired during the outage, and support reading another shop."""
    fired = story.outage[0] + timedelta(minutes=12)
    with UnitOfWork(engine) as uow:
        uow.session.add(RollbackRun(
            kind="immediate", state="done", requested_by="engineer", started_at=fired,
            finished_at=fired + timedelta(seconds=0.6), duration_s=0.6, target_s=IMMEDIATE_TARGET_S,
            outcome="rollback trigger: error rate 64 % over 12 minutes during the model outage (limit 0.1 %); "
                    "2 of 2 workers acknowledged in 0.6 s (demo data)",
            details={"reason": "rollback trigger: error_rate", "demo": True}))
        uow.commit()
    support = Actor(username="support", role=Role.SUPPORT, shop_ids=frozenset(shops[:2]), source="api")
    with UnitOfWork(engine) as uow:
        other = uow.session.scalar(select(Conversation.id).where(Conversation.shop_id == shops[-1]).limit(1))
    record_refusal(actor=support, action="conversation.read", target=f"conversation {other}", uow=UnitOfWork(engine),
                   reason=f"shop {shops[-1]} is not assigned to support (demo data)")
