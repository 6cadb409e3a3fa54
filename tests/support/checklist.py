"""Helpers for the checklist tests: a check context on the test's database, heartbeats, tokens."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from core.auth import Actor, system_actor
from core.checklist.outcome import CheckContext
from core.config import get_settings
from core.models import utcnow
from core.services import tokens, users
from core.uow import UnitOfWork
from core.worker.store import write_heartbeat

ADMIN = system_actor("test")


def context(engine: Engine, *, actor: Actor | None = None, deployed_at: datetime | None = None,
            confirm: str | None = None, history=None) -> CheckContext:
    """A check context as the service builds it, for the configured environment."""
    s = get_settings()
    return CheckContext(engine=engine, settings=s, actor=actor or ADMIN, environment=s.environment,
                        release=s.release_id, deployed_at=deployed_at, confirm=confirm,
                        history=history or (lambda _item: []))


def beat(engine: Engine, worker_id: str = "w1", *, breaker: str = "closed", rss_mb: float = 80.0,
         rss_start_mb: float = 70.0, cpu: float = 2.0, version: int = 0) -> None:
    """A live worker's heartbeat, through the worker's own store."""
    now = utcnow()
    write_heartbeat(engine, {"id": worker_id, "host": "test", "pid": 1, "started_at": now, "last_seen_at": now,
                             "in_flight": 0, "processed": 0, "settings_version": version, "settings_seen_at": now,
                             "breaker_state": breaker, "rss_mb": rss_mb, "rss_start_mb": rss_start_mb,
                             "cpu_percent": cpu}, [])


def token_for(engine: Engine, role: str) -> str:
    """A new user of ROLE and an API token of theirs."""
    name = f"check-{role.replace('_', '-')}"
    extra = {"shops": [1]} if role in ("support", "shop_owner") else {}
    users.add_user(actor=ADMIN, username=name, password="long enough pw", role=role, uow=UnitOfWork(engine), **extra)
    return tokens.create_token(actor=ADMIN, username=name, uow=UnitOfWork(engine)).token
