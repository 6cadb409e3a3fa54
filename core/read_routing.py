"""Reads that tolerate replication lag go to the read replica (DATABASE_READ_URL), and to the primary while it is down.

Only reads whose answer may be a moment old use this: health figures, rollups, lists, the audit log. Writes, the
kill switch and settings that decide behaviour, sessions and anything read-then-written use the primary
(`get_engine()`, `UnitOfWork`). A replica found unreachable is skipped for DATABASE_READ_RETRY_SECONDS, so a
fallback costs one short connect attempt, not one per read.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import get_engine

# What an unreachable or failing replica raises; a missing table (ProgrammingError) is not the replica's fault.
REPLICA_ERRORS = (OperationalError, InterfaceError)
ON_REPLICA, ON_PRIMARY = "replica", "primary"
T = TypeVar("T")


@dataclass(frozen=True)
class Route:
    """Where a read went: `read_from` is 'replica' or 'primary'; `fallback` is True when the replica was skipped."""

    read_from: str
    fallback: bool
    problem: str | None = None


class ReplicaHealth:
    """The replica's last known state, shared by every read of this process (an injected clock for tests)."""

    def __init__(self, *, retry_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._down_until = 0.0
        self.problem: str | None = None
        self._lock = threading.Lock()

    def skipped(self) -> bool:
        """True while a replica found unreachable is not to be tried again."""
        with self._lock:
            return self._clock() < self._down_until

    def mark_down(self, exc: BaseException) -> None:
        """Remember that the replica failed: skip it for retry_seconds."""
        from core.config import mask_urls_in_text
        from core.errors import first_line

        with self._lock:
            self._down_until = self._clock() + self.retry_seconds
            self.problem = mask_urls_in_text(first_line(exc))

    def mark_up(self) -> None:
        """The replica answered: forget an earlier failure."""
        with self._lock:
            self._down_until, self.problem = 0.0, None


_health: dict[str, ReplicaHealth] = {}
_health_lock = threading.Lock()


def replica_health(read_url: str) -> ReplicaHealth:
    """The shared state of the replica at READ_URL."""
    with _health_lock:
        if read_url not in _health:
            _health[read_url] = ReplicaHealth(retry_seconds=get_settings().database_read_retry_seconds)
        return _health[read_url]


def forget_replica_state() -> None:
    """Drop every remembered replica state (tests, a changed DATABASE_READ_URL)."""
    with _health_lock:
        _health.clear()


def connect_for_reads(primary: Engine | None = None) -> tuple[Connection, Route]:
    """A connection for a lag-tolerant read and where it goes: the replica when configured and reachable."""
    primary = primary or get_engine()
    read_url = get_settings().database_read_url
    if read_url is None:
        return primary.connect(), Route(ON_PRIMARY, fallback=False)
    health = replica_health(read_url)
    if not health.skipped():
        try:
            conn = get_engine(read=True).connect()
        except REPLICA_ERRORS as exc:
            health.mark_down(exc)
        else:
            health.mark_up()
            return conn, Route(ON_REPLICA, fallback=False)
    return primary.connect(), Route(ON_PRIMARY, fallback=True, problem=health.problem)


@contextmanager
def replica_session(primary: Engine | None = None, *, one_snapshot: bool = False) -> Iterator[Session]:
    """A read-only session for reads that tolerate lag; `session.info["route"]` says where it went. With ONE_SNAPSHOT
    every statement sees the same snapshot (REPEATABLE READ on PostgreSQL; a SQLite transaction is one already).

    A replica that fails during the read is marked down, so the next read goes to the primary."""
    conn, route = connect_for_reads(primary)
    if one_snapshot and conn.dialect.name == "postgresql":
        # Before the first statement. The figures' own snapshot_session() then reads in it instead of each
        # checking out, pinging and opening a connection of its own: one connection and one snapshot per page.
        conn.execution_options(isolation_level="REPEATABLE READ")
    session = Session(bind=conn, expire_on_commit=False)
    session.info["route"] = route
    try:
        yield session
    except REPLICA_ERRORS as exc:
        if route.read_from == ON_REPLICA:
            replica_health(get_settings().database_read_url or "").mark_down(exc)
        raise
    finally:
        session.close()
        conn.close()


def route_of(session: Session) -> Route:
    """Where SESSION reads from (a session not made by replica_session() reads from the primary)."""
    return session.info.get("route") or Route(ON_PRIMARY, fallback=False)


def run_read(read: Callable[[Session], T], primary: Engine | None = None) -> T:
    """READ(session) on the replica, every statement in one snapshot; if the replica fails during it, READ again on
    the primary (once).

    For reads with no side effects: a replica stopped in the middle of a page's reads costs a repeat, not an error."""
    on_replica = False
    try:
        with replica_session(primary, one_snapshot=True) as session:
            on_replica = route_of(session).read_from == ON_REPLICA
            return read(session)
    except REPLICA_ERRORS:
        if not on_replica:  # the primary failed: that is the page's database problem, not a fallback
            raise
    with replica_session(primary, one_snapshot=True) as session:  # the replica is marked down: the primary's
        return read(session)
