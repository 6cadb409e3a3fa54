"""Closed hours of the response-time histogram, folded into compact rows whose number follows hours × types × shops.

The worker adds each completion to `agent_response_buckets` (one row per hour × instance × bucket: on a busy
database nearly one row per conversation). A fold moves the rows of closed hours, in one transaction, into one row
per hour and agent type, per hour and shop, and per hour, shop and type, each holding the whole histogram
(`counts`: bucket → count). Readers add the compact rows to whatever fine rows remain (the current hour, and
completions that arrived after their hour was folded), so a fold never changes a figure; it makes reads cheap.
The probe folds every cycle (through `refresh_daily`), and so do `seed`, `rollups rebuild` and migration 0010.

Folds and rebuilds are set-based SQL (INSERT … SELECT … GROUP BY, ON CONFLICT DO UPDATE merging the JSON
histograms in the database): a million conversations fold in seconds, where building the rows in Python and
compiling them into multi-VALUES inserts took minutes.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.orm import Session

from core.models import (
    AgentResponseHourlyByShop, AgentResponseHourlyByShopType, AgentResponseHourlyByType, utcnow,
)
from core.models.base import UTCDateTime
from core.rollups import floor_hour

# Each compact table and the columns (besides the hour) it keeps.
FOLDS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (AgentResponseHourlyByType, ("agent_type",)),
    (AgentResponseHourlyByShop, ("shop_id",)),
    (AgentResponseHourlyByShopType, ("shop_id", "agent_type")),
)
# Two folds at once would each merge into the same compact row; the lock makes the second wait for the first.
_FOLD_LOCK = 0x526F6C6C
FINE_COLUMNS = "hour, shop_id, agent_type, bucket, n"


def encode(counts: Mapping[int, int]) -> dict[str, int]:
    """A histogram as stored: JSON object keys are strings."""
    return {str(b): int(n) for b, n in sorted(counts.items()) if n}


def decode(stored: Mapping[str, Any] | None) -> dict[int, int]:
    """A stored histogram back as bucket → count."""
    return {int(b): int(n) for b, n in (stored or {}).items()}


def dialect_name(executor: Session | Connection) -> str:
    """'postgresql' or 'sqlite', for a session or a connection."""
    return executor.dialect.name if isinstance(executor, Connection) else executor.get_bind().dialect.name


def time_param(name: str, value: datetime) -> Any:
    """A bound timestamp stored the way the models store it (naive UTC text on SQLite)."""
    return bindparam(name, value, type_=UTCDateTime())


def merge_json(dialect: str, stored: str, added: str) -> str:
    """SQL adding two bucket → count JSON objects key by key (the ON CONFLICT side of a fold)."""
    if dialect == "postgresql":
        return (f"(SELECT jsonb_object_agg(k, s) FROM (SELECT k, sum(v::bigint)::bigint AS s FROM ("
                f"SELECT key AS k, value AS v FROM jsonb_each_text({stored}) UNION ALL "
                f"SELECT key, value FROM jsonb_each_text({added})) e GROUP BY k) m)")
    return (f"(SELECT json_group_object(k, s) FROM (SELECT k, sum(v) AS s FROM ("
            f"SELECT key AS k, value AS v FROM json_each({stored}) UNION ALL "
            f"SELECT key, value FROM json_each({added})) GROUP BY k))")


def object_agg(dialect: str, key: str, value: str) -> str:
    """SQL aggregating (bucket, count) rows into one JSON object, keys as text."""
    if dialect == "postgresql":
        return f"jsonb_object_agg(({key})::text, ({value})::bigint)"
    return f"json_group_object(CAST({key} AS TEXT), {value})"


def _compact_insert(dialect: str, model: Any, keys: tuple[str, ...], source: str) -> str:
    """INSERT INTO the compact table one row per hour × KEYS from SOURCE (hour, shop_id, agent_type, bucket, n),
    adding to rows already there."""
    table, cols = model.__tablename__, ", ".join(keys)
    return (f"INSERT INTO {table} (hour, {cols}, counts) "
            f"SELECT hour, {cols}, {object_agg(dialect, 'bucket', 'n')} FROM ("
            f"SELECT hour, {cols}, bucket, sum(n) AS n FROM {source} GROUP BY hour, {cols}, bucket) x "
            f"WHERE true GROUP BY hour, {cols} "
            f"ON CONFLICT (hour, {cols}) DO UPDATE SET "
            f"counts = {merge_json(dialect, table + '.counts', 'excluded.counts')}")


def add_to_compact(executor: Session | Connection, source: str, params: Mapping[str, Any] | None = None) -> int:
    """Add the rows of the SQL query SOURCE (hour, shop_id, agent_type, bucket, n) to the three compact tables;
    returns compact rows written."""
    dialect = dialect_name(executor)
    if dialect == "postgresql":  # the source is computed once for the three tables
        inserts = ", ".join(f"i{i} AS ({_compact_insert(dialect, m, k, 'src')} RETURNING 1)"
                            for i, (m, k) in enumerate(FOLDS))
        written = " + ".join(f"(SELECT count(*) FROM i{i})" for i in range(len(FOLDS)))
        return int(executor.execute(_bind(text(f"WITH src AS ({source}), {inserts} SELECT {written}"),
                                          params)).scalar_one())
    return sum(executor.execute(_bind(text(f"WITH src AS ({source}) {_compact_insert(dialect, m, k, 'src')}"),
                                      params)).rowcount for m, k in FOLDS)


def _bind(stmt: Any, params: Mapping[str, Any] | None) -> Any:
    return stmt.bindparams(*[time_param(k, v) if isinstance(v, datetime) else bindparam(k, v)
                             for k, v in (params or {}).items()])


def fold_closed_hours(executor: Session | Connection, *, before: datetime | None = None,
                      touched: set[datetime] | None = None) -> int:
    """Move the fine histogram rows of hours before BEFORE (default: the current hour) into the compact rows, in
    one set-based pass; returns how many fine rows were folded and adds their hours to TOUCHED. Call inside the
    caller's transaction."""
    before = floor_hour(before or utcnow())
    dialect = dialect_name(executor)
    fine = "agent_response_buckets"
    if dialect == "postgresql":
        executor.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FOLD_LOCK})
        # DELETE … RETURNING feeds the inserts: a completion the worker adds meanwhile is either in `moved`
        # or stays behind as a fine row, never lost between a read and a delete.
        inserts = ", ".join(f"i{i} AS ({_compact_insert(dialect, m, k, 'moved')} RETURNING 1)"
                            for i, (m, k) in enumerate(FOLDS))
        stmt = text(f"WITH moved AS (DELETE FROM {fine} WHERE hour < :before "
                    f"RETURNING hour, shop_id, agent_type, bucket, count AS n), {inserts} "
                    "SELECT count(*), array_agg(DISTINCT hour) FROM moved")
        n, hours = executor.execute(stmt.bindparams(time_param("before", before))).one()
        (touched if touched is not None else set()).update(hours or [])
        return int(n)
    # SQLite: one writer at a time, so the rows read here are the rows deleted below.
    source = f"SELECT hour, shop_id, agent_type, bucket, count AS n FROM {fine} WHERE hour < :before"
    note_hours(executor, fine, before, touched)
    add_to_compact(executor, source, {"before": before})
    return executor.execute(text(f"DELETE FROM {fine} WHERE hour < :before").bindparams(
        time_param("before", before))).rowcount


def note_hours(executor: Session | Connection, table: str, before: datetime, touched: set[datetime] | None) -> None:
    """Add to TOUCHED the hours before BEFORE that TABLE holds rows of (SQLite's fold, before it deletes them)."""
    if touched is None:
        return
    for (hour,) in executor.execute(text(f"SELECT DISTINCT hour FROM {table} WHERE hour < :before").bindparams(
            time_param("before", before))):
        hour = datetime.fromisoformat(hour) if isinstance(hour, str) else hour
        touched.add(hour if hour.tzinfo else hour.replace(tzinfo=timezone.utc))
