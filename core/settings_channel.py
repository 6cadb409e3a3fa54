"""The channel on which every change of the agent settings is announced (PostgreSQL NOTIFY)."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "agent_settings"


def announce_settings_change(session: Session, *, version: int) -> None:
    """Queue a NOTIFY inside the caller's transaction: PostgreSQL delivers it at commit, never on rollback.

    On SQLite there is no push; the workers poll (AGENT_SETTINGS_TTL_SECONDS).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(version)})
