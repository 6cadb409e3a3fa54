"""Closed hours of the response-time histogram, folded into compact rows whose number follows hours × types × shops.

The worker adds each completion to `agent_response_buckets` (one row per hour × instance × bucket: on a busy
database nearly one row per conversation). A fold moves the rows of closed hours, in one transaction, into one row
per hour and agent type, per hour and shop, and per hour, shop and type, each holding the whole histogram
(`counts`: bucket → count). Readers add the compact rows to whatever fine rows remain (the current hour, and
completions that arrived after their hour was folded), so a fold never changes a figure; it makes reads cheap.
The probe folds every cycle (through `refresh_daily`), and so do `seed`, `rollups rebuild` and migration 0010; the
probe folds the current hour too, but for the rows a worker holds at that moment (`fold_current_histograms`).

Folds and rebuilds are set-based SQL (INSERT … SELECT … GROUP BY, ON CONFLICT DO UPDATE merging the JSON
histograms in the database): a million conversations fold in seconds, where building the rows in Python and
compiling them into multi-VALUES inserts took minutes.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, func, text
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
_FINE = "agent_response_buckets"
FINE_COLUMNS = "hour, shop_id, agent_type, bucket, n"


def encode(counts: Mapping[int, int]) -> dict[str, int]:
    """A histogram as stored: JSON object keys are strings."""
    return {str(b): int(n) for b, n in sorted(counts.items()) if n}


def decode(stored: Mapping[str, Any] | None) -> dict[int, int]:
    """A stored histogram back as bucket → count."""
    return {int(b): int(n) for b, n in (stored or {}).items()}


def joined_counts(executor: Session | Connection, column: Any) -> Any:
    """SQL aggregate joining a group's stored histograms into one text, for sum_stored: a month by shop is
    thousands of rows, and decoding each as JSON cost more than the rest of the query."""
    as_text = cast(column, Text)
    if dialect_name(executor) == "postgresql":
        return func.string_agg(as_text, " ", type_=Text)
    return func.group_concat(as_text, " ", type_=Text)


# The JSON punctuation of a stored histogram: without it, the text is bucket count bucket count ...
_PUNCTUATION = str.maketrans('{}":,', "     ")
_MAX_BUCKET = 10_000  # bucket_of gives under 500 for any response time; more means text this code did not write


def sum_stored(joined: str | None) -> dict[int, int]:
    """Histograms joined by joined_counts, summed into one bucket → count."""
    return sum_stored_by_key([(None, joined)])[None]


def sum_stored_by_key(rows: Iterable[tuple[Any, str | None]]) -> dict[Any, dict[int, int]]:
    """(key, histograms joined by joined_counts) rows, a key possibly repeated, summed per key; every key appears."""
    index: dict[Any, int] = {}
    owners, texts = [], []
    for key, joined in rows:
        i = index.setdefault(key, len(index))
        if joined:
            owners.append(i)
            texts.append(joined)
    pairs = [t.count(":") for t in texts]
    expected = 2 * sum(pairs)  # numbers in the text: a bucket and a count per pair
    if not expected:
        return _sum_each_slowly(index, owners, texts)
    import numpy as np  # only readers of histograms pay for the import (the CLI starts without it)

    try:  # numpy parses every number in C at once; text it stops early on (a warning) falls to the exact path below
        numbers = np.fromstring(" ".join(texts).translate(_PUNCTUATION), dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        numbers = None
    if numbers is None or numbers.size != expected or not _plausible(numbers[0::2], numbers[1::2]):
        return _sum_each_slowly(index, owners, texts)
    buckets, counts = numbers[0::2], numbers[1::2]
    width = int(buckets.max()) + 1
    cells = np.repeat(np.asarray(owners, dtype=np.int64), pairs) * width + buckets
    # float64 weights: exact for counts below 2**53
    sums = np.bincount(cells, weights=counts, minlength=len(index) * width).reshape(len(index), width)
    out = {}
    for key, i in index.items():
        nonzero = np.flatnonzero(sums[i])
        out[key] = dict(zip(nonzero.tolist(), np.rint(sums[i][nonzero]).astype(np.int64).tolist()))
    return out


def _sum_each_slowly(index: dict[Any, int], owners: list[int], texts: list[str]) -> dict[Any, dict[int, int]]:
    return {key: _sum_slowly(" ".join(t for i, t in zip(owners, texts) if i == n)) for key, n in index.items()}


def _plausible(buckets: Any, counts: Any) -> bool:
    return bool(buckets.min() >= 0 and counts.min() >= 0 and buckets.max() <= _MAX_BUCKET)


def _not_a_count(text: str) -> int:
    raise ValueError(f"a stored histogram holds {text}, not a whole count")


def _sum_slowly(joined: str) -> dict[int, int]:
    """The exact path: one flat JSON object after another, decoded and added up (a bad one raises)."""
    *objects, rest = joined.split("}")
    if rest.strip():
        raise ValueError(f"stored histograms end in text that is not JSON: {rest[:40]!r}")
    total: Counter[int] = Counter()
    for piece in objects:
        total.update(decode(json.loads(piece + "}", parse_float=_not_a_count)))
    return {b: n for b, n in total.items() if n}


def dialect_name(executor: Session | Connection) -> str:
    """'postgresql' or 'sqlite', for a session or a connection."""
    return executor.dialect.name if isinstance(executor, Connection) else executor.get_bind().dialect.name


def time_param(name: str, value: datetime) -> Any:
    """A bound timestamp stored the way the models store it (naive UTC text on SQLite)."""
    return bindparam(name, value, type_=UTCDateTime())


def each_bucket(dialect: str, counts: str) -> str:
    """SQL rows (key, value) of a stored histogram, the values as text on PostgreSQL; the column may be json or
    jsonb (migrations before 0013 run this on jsonb)."""
    if dialect == "postgresql":
        return f"json_each_text(({counts})::json)"
    return f"json_each({counts})"


def merge_json(dialect: str, stored: str, added: str) -> str:
    """SQL adding two bucket → count JSON objects key by key (the ON CONFLICT side of a fold)."""
    total = "sum(v::bigint)::bigint" if dialect == "postgresql" else "sum(v)"
    return (f"(SELECT {object_agg(dialect, 'k', 's')} FROM (SELECT k, {total} AS s FROM ("
            f"SELECT key AS k, value AS v FROM {each_bucket(dialect, stored)} UNION ALL "
            f"SELECT key, value FROM {each_bucket(dialect, added)}) e GROUP BY k) m)")


def object_agg(dialect: str, key: str, value: str) -> str:
    """SQL aggregating (bucket, count) rows into one JSON object, keys as text."""
    if dialect == "postgresql":  # json, not jsonb: the histogram columns are json (a jsonb column casts it)
        return f"json_object_agg(({key})::text, ({value})::bigint)"
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
    if dialect_name(executor) != "postgresql":  # PostgreSQL's fold returns the hours it moved
        note_hours(executor, _FINE, before, touched)
    n, hours = _fold(executor, "hour < :at", before)
    (touched if touched is not None else set()).update(hours)
    return n


def fold_current_histograms(executor: Session | Connection, *, now: datetime | None = None) -> int:
    """Move the fine histogram rows of the current hour into its compact rows too, but for those a worker holds
    at this moment (they stay fine rows until the next fold); returns how many were folded. Readers add fine and
    compact rows of every hour alike, so a read of the current hour then finds a row per type or shop and the
    completions since the last fold, not a row per instance and bucket for every minute of the hour so far."""
    return _fold(executor, "hour >= :at", floor_hour(now or utcnow()), skip_locked=True)[0]


def _fold(executor: Session | Connection, where: str, at: datetime, *, skip_locked: bool = False
          ) -> tuple[int, list[datetime]]:
    """Move the fine histogram rows WHERE (`:at` bound to AT) into the compact rows: how many, and their hours
    (PostgreSQL; SQLite's are noted before, see note_hours). SKIP_LOCKED leaves rows a worker holds where they are,
    so the fold never waits for a worker (nor a worker, holding one row and asking for another, for the fold)."""
    dialect = dialect_name(executor)
    if dialect == "postgresql":
        inserts = [_compact_insert(dialect, m, k, "moved") for m, k in FOLDS]
        return move_rows(executor, _FINE, "hour, shop_id, agent_type, bucket, count AS n", inserts, where, at,
                         skip_locked=skip_locked)
    # SQLite: one writer at a time, so the rows read here are the rows deleted below.
    add_to_compact(executor, f"SELECT hour, shop_id, agent_type, bucket, count AS n FROM {_FINE} WHERE {where}",
                   {"at": at})
    return executor.execute(text(f"DELETE FROM {_FINE} WHERE {where}").bindparams(time_param("at", at))).rowcount, []


def move_rows(executor: Session | Connection, table: str, returning: str, inserts: list[str], where: str,
              at: datetime, *, skip_locked: bool = False) -> tuple[int, list[datetime]]:
    """PostgreSQL: delete TABLE's rows WHERE (`:at` bound to AT) and feed them, as `moved` (RETURNING), to each of
    INSERTS, in one statement; how many, and their hours. A completion the worker adds meanwhile is either in
    `moved` or stays behind as a fine row, never lost between a read and a delete. SKIP_LOCKED leaves the rows
    another transaction holds where they are.

    Every fold (sums or histograms, closed hours or the current one) first takes the fold lock: two folds taking
    row locks in different orders deadlocked."""
    executor.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FOLD_LOCK})
    rows = f"ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {where} FOR UPDATE SKIP LOCKED))" if skip_locked \
        else where
    feeds = ", ".join(f"i{i} AS ({insert} RETURNING 1)" for i, insert in enumerate(inserts))
    stmt = text(f"WITH moved AS (DELETE FROM {table} WHERE {rows} RETURNING {returning}), {feeds} "
                "SELECT count(*), array_agg(DISTINCT hour) FROM moved")
    n, hours = executor.execute(stmt.bindparams(time_param("at", at))).one()
    return int(n), list(hours or [])


def note_hours(executor: Session | Connection, table: str, before: datetime, touched: set[datetime] | None) -> None:
    """Add to TOUCHED the hours before BEFORE that TABLE holds rows of (SQLite's fold, before it deletes them)."""
    if touched is None:
        return
    for (hour,) in executor.execute(text(f"SELECT DISTINCT hour FROM {table} WHERE hour < :before").bindparams(
            time_param("before", before))):
        hour = datetime.fromisoformat(hour) if isinstance(hour, str) else hour
        touched.add(hour if hour.tzinfo else hour.replace(tzinfo=timezone.utc))
