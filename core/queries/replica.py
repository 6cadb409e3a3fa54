"""The read replica as the Agent health page, the API and the CLI show it: configured, reachable, how far behind."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, text

from core.auth import Actor, Permission
from core.config import get_settings, mask_url
from core.db import get_engine
from core.queries.scope import require_read
from core.read_routing import REPLICA_ERRORS, replica_health

# Seconds behind: none when the replica has applied all the primary's WAL (an idle primary writes no transactions,
# so the age of the last replayed one would only measure how quiet it is); otherwise the age of that transaction.
REPLICA_SQL = text(
    "SELECT pg_is_in_recovery() AS standby, pg_wal_lsn_diff(CAST(:primary_lsn AS pg_lsn), "
    "COALESCE(pg_last_wal_replay_lsn(), CAST(:primary_lsn AS pg_lsn))) AS lag_bytes, "
    "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) AS replay_age_s, "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused")


@dataclass(frozen=True)
class ReplicaStatus:
    """What a person needs to know about the replica; `problem` is one sentence when it is not usable."""

    configured: bool
    reachable: bool
    reading_from: str  # where lag-tolerant reads go now: "replica" or "primary"
    url: str | None = None
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    replay_paused: bool = False
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def get_replica_status(*, actor: Actor, primary: Engine | None = None) -> ReplicaStatus:
    """Is a replica configured and reachable, and how far behind the primary (seconds and bytes of WAL)?"""
    require_read(actor, Permission.VIEW_HEALTH)
    read_url = get_settings().database_read_url
    if read_url is None:
        return ReplicaStatus(configured=False, reachable=False, reading_from="primary")
    url, health = mask_url(read_url), replica_health(read_url)
    if health.skipped():  # found down a moment ago: say so without another connect attempt
        return _down(url, health.problem or "unreachable")
    primary_lsn = _primary_lsn(primary or get_engine())  # a primary that is down is the page's own problem
    try:
        status = _measure(url, primary_lsn, get_engine(read=True))
    except REPLICA_ERRORS as exc:
        health.mark_down(exc)
        return _down(url, health.problem or "unreachable")
    health.mark_up()
    return status


def _down(url: str, problem: str) -> ReplicaStatus:
    return ReplicaStatus(configured=True, reachable=False, reading_from="primary", url=url,
                         problem=f"The read replica is unreachable ({problem}); reads go to the primary.")


def _primary_lsn(primary: Engine) -> str | None:
    """The primary's WAL write position (None on SQLite, which has no replicas)."""
    if primary.dialect.name != "postgresql":
        return None
    with primary.connect() as conn:
        return conn.execute(text("SELECT CAST(pg_current_wal_lsn() AS text)")).scalar_one()


def _measure(url: str, primary_lsn: str | None, replica: Engine) -> ReplicaStatus:
    """How much of the primary's WAL (up to PRIMARY_LSN) the replica has applied, and how long ago."""
    if primary_lsn is None or replica.dialect.name != "postgresql":
        with replica.connect():
            pass
        return ReplicaStatus(configured=True, reachable=True, reading_from="replica", url=url,
                             problem="Lag is measured only when both the primary and the replica are PostgreSQL.")
    with replica.connect() as conn:
        row = conn.execute(REPLICA_SQL, {"primary_lsn": primary_lsn}).one()
    if not row.standby:
        return ReplicaStatus(configured=True, reachable=True, reading_from="replica", url=url,
                             problem="DATABASE_READ_URL points at a server that is not a standby.")
    behind = max(int(row.lag_bytes), 0)
    seconds = 0.0 if behind == 0 or row.replay_age_s is None else max(float(row.replay_age_s), 0.0)
    return ReplicaStatus(configured=True, reachable=True, reading_from="replica", url=url, lag_seconds=seconds,
                         lag_bytes=behind, replay_paused=bool(row.paused))
