"""Closed hours of the response-time histogram, folded into compact rows whose number follows hours × types × shops.

The worker adds each completion to `agent_response_buckets` (one row per hour × instance × bucket: on a busy
database nearly one row per conversation). A fold moves the rows of closed hours, in one transaction, into one row
per hour and agent type, per hour and shop, and per hour, shop and type, each holding the whole histogram
(`counts`: bucket → count). Readers add the compact rows to whatever fine rows remain (the current hour, and
completions that arrived after their hour was folded), so a fold never changes a figure; it makes reads cheap.
The probe folds every cycle (through `refresh_daily`), and so do `seed`, `rollups rebuild` and migration 0010.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import (
    AgentResponseBucket, AgentResponseHourlyByShop, AgentResponseHourlyByShopType, AgentResponseHourlyByType, utcnow,
)
from core.rollups import floor_hour

# Each compact table and the columns (besides the hour) it keeps.
FOLDS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (AgentResponseHourlyByType, ("agent_type",)),
    (AgentResponseHourlyByShop, ("shop_id",)),
    (AgentResponseHourlyByShopType, ("shop_id", "agent_type")),
)
# Two folds at once would each read a compact row, add their own counts and write it back: one would be lost.
_FOLD_LOCK = 0x526F6C6C
# SQLite allows 32,766 bound values per statement; four columns a row.
_INSERT_CHUNK = 2000


def encode(counts: Mapping[int, int]) -> dict[str, int]:
    """A histogram as stored: JSON object keys are strings."""
    return {str(b): int(n) for b, n in sorted(counts.items()) if n}


def decode(stored: Mapping[str, Any] | None) -> dict[int, int]:
    """A stored histogram back as bucket → count."""
    return {int(b): int(n) for b, n in (stored or {}).items()}


def _dialect(executor: Session | Connection) -> str:
    return executor.dialect.name if isinstance(executor, Connection) else executor.get_bind().dialect.name


def fold_closed_hours(executor: Session | Connection, *, before: datetime | None = None) -> int:
    """Move the fine histogram rows of hours before BEFORE (default: the current hour) into the compact rows, a day
    at a time; returns how many fine rows were folded. Call inside the caller's transaction."""
    before = floor_hour(before or utcnow())
    if _dialect(executor) == "postgresql":
        executor.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FOLD_LOCK})
    b = AgentResponseBucket.__table__
    folded = 0
    start = executor.scalar(select(func.min(b.c.hour)).where(b.c.hour < before))
    while start is not None:
        end = min(floor_hour(start) + timedelta(days=1), before)
        rows = executor.execute(delete(b).where(b.c.hour >= start, b.c.hour < end).returning(
            b.c.hour, b.c.shop_id, b.c.agent_type, b.c.bucket, b.c.count)).all()
        add_to_compact(executor, rows)
        folded += len(rows)
        start = executor.scalar(select(func.min(b.c.hour)).where(b.c.hour >= end, b.c.hour < before))
    return folded


def add_to_compact(executor: Session | Connection, rows: Sequence[Any]) -> None:
    """Add fine rows (hour, shop_id, agent_type, bucket, count) to the three compact tables."""
    if not rows:
        return
    lo, hi = min(r.hour for r in rows), max(r.hour for r in rows)
    for model, keys in FOLDS:
        adds: dict[tuple, Counter[int]] = defaultdict(Counter)
        for r in rows:
            adds[(r.hour, *(getattr(r, k) for k in keys))][int(r.bucket)] += int(r.count)
        t = model.__table__
        existing = {(row.hour, *(getattr(row, k) for k in keys)): row.counts
                    for row in executor.execute(select(t).where(t.c.hour >= lo, t.c.hour <= hi))}
        merged = [{"hour": key[0], **dict(zip(keys, key[1:])), "counts": encode(Counter(decode(existing.get(key))) + add)}
                  for key, add in adds.items()]
        _put(executor, model, ["hour", *keys], merged)


def _put(executor: Session | Connection, model: Any, keys: list[str], values: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO UPDATE SET counts = excluded.counts (the merge was done above, under the fold lock)."""
    dialect = postgresql if _dialect(executor) == "postgresql" else sqlite
    for i in range(0, len(values), _INSERT_CHUNK):
        stmt = dialect.insert(model).values(values[i:i + _INSERT_CHUNK])
        executor.execute(stmt.on_conflict_do_update(index_elements=keys, set_={"counts": stmt.excluded.counts}))


def merge_into(target: dict[int, int], counts: Iterable[tuple[int, int]]) -> None:
    """Add (bucket, count) pairs to TARGET."""
    for b, n in counts:
        target[b] = target.get(b, 0) + n
