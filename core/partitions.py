"""The month partitions of agent_conversations and agent_messages (PostgreSQL; SQLite has none and needs none).

Each month is a pair of partitions named agent_conversations_y2026m12 / agent_messages_y2026m12, and each table
keeps a DEFAULT partition so an insert never fails for want of one. `ensure_partitions` creates the months from
the oldest asked for through two months ahead; the probe calls it every cycle, `seed` and migration 0011 too, so a
month's partition exists well before its first row. A month whose rows already sit in the DEFAULT partition is
left there (moving them would take the table's lock for as long as the copy): see `MonthPlan.skipped`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Connection, text

from core.models.partitioning import CONVERSATION_STORAGE, PARTITION_KEYS, PARTITION_NAME

AHEAD_MONTHS = 2  # the current month and this many after it always have their partitions
_LOCK = 0x50415254  # one process at a time adds partitions: two would race for the same name


@dataclass
class MonthPlan:
    """What `ensure_partitions` did: months created, and months left in the DEFAULT partition."""

    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def month_start(ts: datetime) -> datetime:
    """The first instant (UTC) of TS's month."""
    ts = ts.astimezone(timezone.utc)
    return datetime(ts.year, ts.month, 1, tzinfo=timezone.utc)


def add_months(month: datetime, n: int) -> datetime:
    """The first instant of the month N months after MONTH (N may be negative)."""
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=timezone.utc)


def suffix(month: datetime) -> str:
    """The partition suffix of MONTH: y2026m12."""
    return f"y{month.year:04d}m{month.month:02d}"


def month_of_suffix(name: str) -> datetime | None:
    """The month a partition's name stands for; None for a DEFAULT partition or a name that is not one."""
    match = PARTITION_NAME.match(name)
    if not match or match.group(2) == "default":
        return None
    tag = match.group(2)
    return datetime(int(tag[1:5]), int(tag[6:8]), 1, tzinfo=timezone.utc)


def partitions_of(conn: Connection, table: str) -> list[str]:
    """The names of TABLE's partitions (PostgreSQL), sorted."""
    return sorted(conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"), {"t": table}).scalars())


def is_partitioned(conn: Connection) -> bool:
    """True when agent_conversations is a partitioned table (PostgreSQL at revision 0011 or later)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text(
        "SELECT 1 FROM pg_class WHERE relname = 'agent_conversations' AND relkind = 'p'")).first())


def ensure_partitions(conn: Connection, now: datetime, *, since: datetime | None = None) -> MonthPlan:
    """Create the month partitions from SINCE's month (default: NOW's) through two months after NOW's, and the
    DEFAULT partitions; returns what was created. Nothing happens elsewhere than partitioned PostgreSQL."""
    plan = MonthPlan()
    if not is_partitioned(conn):
        return plan
    first, last = month_start(since or now), add_months(month_start(now), AHEAD_MONTHS)
    existing = set(partitions_of(conn, "agent_conversations")) | set(partitions_of(conn, "agent_messages"))
    wanted = []
    month = min(first, last)
    while month <= last:
        wanted.append(month)
        month = add_months(month, 1)
    missing = [m for m in wanted if any(f"{t}_{suffix(m)}" not in existing for t in PARTITION_KEYS)]
    if not missing and all(f"{t}_default" in existing for t in PARTITION_KEYS):
        return plan  # the probe's every cycle: one catalog read
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    for table in PARTITION_KEYS:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT"
                          + _storage(table)))
    for month in missing:
        if _default_holds(conn, month):
            plan.skipped.append(suffix(month))
            continue
        for table, key in PARTITION_KEYS.items():
            conn.execute(text(
                f"CREATE TABLE IF NOT EXISTS {table}_{suffix(month)} PARTITION OF {table} "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{add_months(month, 1).isoformat()}')"
                + _storage(table)))
        plan.created.append(suffix(month))
    return plan


def _storage(table: str) -> str:
    # The conversations' pages keep room for the worker's updates (migration 0005), month by month.
    return f" WITH ({CONVERSATION_STORAGE})" if table == "agent_conversations" else ""


def _default_holds(conn: Connection, month: datetime) -> bool:
    """True when either DEFAULT partition has rows of MONTH (a partition for it would then be refused)."""
    bounds = {"lo": month, "hi": add_months(month, 1)}
    return any(conn.execute(text(
        f"SELECT 1 FROM {table}_default WHERE {key} >= :lo AND {key} < :hi LIMIT 1"), bounds).first()
        for table, key in PARTITION_KEYS.items())
