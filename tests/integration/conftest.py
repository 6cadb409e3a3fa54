"""Fixtures for the API tests: one user and token per role, plus an expired and a revoked token."""
from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from core.api import create_app
from core.auth import system_actor
from core.db import read_session
from core.models import AgentInstance, ApiToken, Conversation, utcnow
from core.services import tokens, users
from core.uow import UnitOfWork
from tests.support.data import seed_minimal

ADMIN = system_actor("test")
ROLES = ["product_owner", "support", "engineer", "admin", "shop_owner", "enterprise_owner"]


@pytest.fixture
def api(engine: Engine) -> dict:
    """A seeded database, one user and token per role, plus an expired and a revoked token."""
    seed_minimal(engine)
    extra = {"support": {"shops": [1]}, "shop_owner": {"shops": [1]}, "enterprise_owner": {"enterprise_id": 1}}
    toks = {}
    for role in ROLES:
        users.add_user(actor=ADMIN, username=f"u-{role.replace('_', '-')}", password="long enough pw", role=role,
                       uow=UnitOfWork(engine), **extra.get(role, {}))
        toks[role] = tokens.create_token(actor=ADMIN, username=f"u-{role.replace('_', '-')}", uow=UnitOfWork(engine)).token
    expired = tokens.create_token(actor=ADMIN, username="u-engineer", uow=UnitOfWork(engine))
    revoked = tokens.create_token(actor=ADMIN, username="u-engineer", uow=UnitOfWork(engine))
    with engine.begin() as conn:  # time passes for this token
        conn.execute(update(ApiToken).where(ApiToken.id == expired.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    tokens.revoke_token(actor=ADMIN, token_id=revoked.id, uow=UnitOfWork(engine))
    toks.update(expired=expired.token, revoked=revoked.token, none=None)
    with read_session(engine) as s:
        inst = {shop: s.scalars(select(AgentInstance.id).where(AgentInstance.shop_id == shop)).first() for shop in (1, 2)}
        conv = {shop: s.scalars(select(Conversation.id).where(Conversation.shop_id == shop)).first() for shop in (1, 2)}
    return {"client": TestClient(create_app(engine=engine)), "tokens": toks, "instance": inst, "conversation": conv}


