"""Test data through the project's own seed and services, never hand-written SQL."""
from __future__ import annotations

from sqlalchemy import Engine

from core.auth import Actor, Role, system_actor
from core.seed.runner import SeedReport, seed

ROLE_ACTORS = {
    "product_owner": Actor(username="pat", role=Role.PRODUCT_OWNER, source="test"),
    "support": Actor(username="sam", role=Role.SUPPORT, shop_ids=frozenset({1}), source="test"),
    "engineer": Actor(username="erin", role=Role.ENGINEER, source="test"),
    "admin": Actor(username="ada", role=Role.ADMIN, source="test"),
    "shop_owner": Actor(username="otto", role=Role.SHOP_OWNER, shop_ids=frozenset({1}), source="test"),
    "enterprise_owner": Actor(username="eve", role=Role.ENTERPRISE_OWNER, shop_ids=frozenset({1, 2}), source="test"),
}


def seed_minimal(engine: Engine, conversations: int | None = None, days: int | None = None) -> SeedReport:
    """The checklist's --test-data=minimal: 2 shops, clients, 18 instances, conversations in every status."""
    return seed(actor=system_actor("test"), engine=engine, size="minimal", conversations=conversations, days=days)


def unfold_recent_hours(engine: Engine, hours: int = 6) -> None:
    """The last HOURS as fine rollup rows (agent_metrics, agent_response_buckets), as the worker leaves them until the
    probe folds them: the compact rows of those hours are taken out."""
    from datetime import timedelta

    from core.models import AgentMetric, AgentResponseBucket, utcnow
    from core.rollups import floor_hour, insert_fine_buckets, insert_metrics
    from core.rollups_compact import FOLDS
    from core.rollups_sums import SUM_FOLDS
    from core.uow import UnitOfWork

    recent = floor_hour(utcnow()) - timedelta(hours=hours)
    with UnitOfWork(engine) as uow:
        for model in (AgentMetric, AgentResponseBucket, *(m for m, _ in SUM_FOLDS), *(m for m, _ in FOLDS)):
            uow.session.execute(model.__table__.delete().where(model.hour >= recent))
        insert_metrics(uow.session, since=recent)
        insert_fine_buckets(uow.session, since=recent)
        uow.commit()
