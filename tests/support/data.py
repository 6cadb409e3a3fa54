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
