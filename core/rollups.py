"""Hourly rollups: counts, tokens, cost and a log-bucket response-time histogram per instance.

Rows are keyed by the hour a conversation was *created*, so "conversations created in the
window", their status counts, error rate and p95 all come from the same rows, exactly.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import AgentDbTiming, AgentMetric, AgentResponseBucket, Conversation, utcnow

# Each bucket is 5 % wider than the last: its geometric middle is within 2.5 % of any value in it.
BUCKET_RATIO = 1.05
_LOG_RATIO = math.log(BUCKET_RATIO)
TERMINAL_COLUMNS = {"completed": "completed", "failed": "failed", "opted_out": "opted_out"}


def floor_hour(ts: datetime) -> datetime:
    """TS truncated to the hour."""
    return ts.replace(minute=0, second=0, microsecond=0)


def bucket_of(ms: float) -> int:
    """The histogram bucket of a duration in milliseconds."""
    return int(math.floor(math.log(max(ms, 1.0)) / _LOG_RATIO))


def bucket_value(bucket: int) -> float:
    """The representative duration of BUCKET (its geometric middle), in milliseconds."""
    return BUCKET_RATIO ** (bucket + 0.5)


def percentile(buckets: Mapping[int, int], q: float) -> float | None:
    """The Q-quantile (0..1) read from a bucket → count histogram; None when it is empty."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(max(buckets))


def _upsert(session: Session | Connection, model: Any, keys: list[str], values: list[dict[str, Any]], adds: list[str]) -> None:
    """INSERT … ON CONFLICT DO UPDATE col = col + excluded.col, on PostgreSQL and SQLite alike."""
    if not values:
        return
    dialect = postgresql if _dialect_name(session) == "postgresql" else sqlite
    stmt = dialect.insert(model).values(values)
    table = model.__table__
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: table.c[c] + stmt.excluded[c] for c in adds})
    session.execute(stmt)


def _dialect_name(executor: Session | Connection) -> str:
    return executor.dialect.name if isinstance(executor, Connection) else executor.get_bind().dialect.name


def _metric_key(conv: Any) -> dict[str, Any]:
    return {"hour": floor_hour(conv.created_at), "agent_instance_id": conv.agent_instance_id,
            "shop_id": conv.shop_id, "agent_type": conv.agent_type}


def record_created(session: Session, convs: Iterable[Any]) -> None:
    """Count newly created conversations in their hour's rollup."""
    counts: Counter[tuple] = Counter()
    keys: dict[tuple, dict[str, Any]] = {}
    for conv in convs:
        key = _metric_key(conv)
        k = (key["hour"], key["agent_instance_id"])
        counts[k] += 1
        keys[k] = key
    rows = [{**keys[k], "created": n, "completed": 0, "failed": 0, "opted_out": 0, "response_ms_sum": 0,
             "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0} for k, n in counts.items()]
    _upsert(session, AgentMetric, ["hour", "agent_instance_id"], rows, ["created"])


def record_finished(session: Session | Connection, conv: Any) -> None:
    """Add a conversation that reached a terminal status to its created-hour rollup."""
    key = _metric_key(conv)
    row = {**key, "created": 0, "completed": 0, "failed": 0, "opted_out": 0,
           "response_ms_sum": conv.response_time_ms or 0, "prompt_tokens": conv.prompt_tokens or 0,
           "completion_tokens": conv.completion_tokens or 0, "cost_usd": float(conv.cost_usd or 0)}
    row[TERMINAL_COLUMNS[conv.status]] = 1
    _upsert(session, AgentMetric, ["hour", "agent_instance_id"], [row],
            ["completed", "failed", "opted_out", "response_ms_sum", "prompt_tokens", "completion_tokens", "cost_usd"])
    if conv.status == "completed" and conv.response_time_ms is not None:
        _upsert(session, AgentResponseBucket, ["hour", "agent_instance_id", "bucket"],
                [{**key, "bucket": bucket_of(conv.response_time_ms), "count": 1}], ["count"])


def record_db_time(session: Session | Connection, *, source: str, samples_ms: Iterable[float], at: datetime) -> None:
    """Add database timings (worker writes, console probes) to the hour's histogram."""
    counts = Counter(bucket_of(ms) for ms in samples_ms)
    rows = [{"hour": floor_hour(at), "source": source, "bucket": b, "count": n} for b, n in counts.items()]
    _upsert(session, AgentDbTiming, ["hour", "source", "bucket"], rows, ["count"])


def rebuild(session: Session, *, since: datetime | None = None) -> int:
    """Recompute the rollups from raw conversations created at or after SINCE; returns rows written."""
    from core.rollups_compact import FOLDS
    from core.rollups_daily import refresh_daily
    from core.rollups_sums import SUM_FOLDS, insert_compact_sums

    since_hour = floor_hour(since) if since else None
    # Retention drops the raw rows of old months once their rollups hold them: a rebuild never reaches back past
    # the oldest raw row still held, or it would erase those months' figures for good.
    oldest = session.scalar(select(func.min(Conversation.created_at)))
    if oldest is not None:
        since_hour = max(since_hour, floor_hour(oldest)) if since_hour else floor_hour(oldest)
    for model in (AgentMetric, AgentResponseBucket, *(fold[0] for fold in FOLDS + SUM_FOLDS)):
        stmt = delete(model)
        session.execute(stmt.where(model.hour >= since_hour) if since_hour else stmt)
    current = floor_hour(utcnow())  # closed hours straight into the compact rows, the current one into fine rows
    n = insert_compact_sums(session, since=since_hour, before=current)
    n += insert_metrics(session, since=max(since_hour, current) if since_hour else current)
    n += insert_compact_buckets(session, since=since_hour, before=current)
    n += insert_fine_buckets(session, since=max(since_hour, current) if since_hour else current)
    span = None if since is None else (utcnow() - since).days + 2
    return n + refresh_daily(session, days=span)


def insert_metrics(session: Session | Connection, *, since: datetime | None = None) -> int:
    """Add the sums of conversations created since SINCE (all, when None) to agent_metrics, per hour × instance,
    as the worker does one by one; returns rows written."""
    c = Conversation
    is_pg = _dialect_name(session) == "postgresql"
    hour = _hour_sql(session, c.created_at)
    where = [c.created_at >= since] if since else []

    def count_if(status: str) -> Any:
        return func.sum(func.cast(c.status == status, postgresql.INTEGER if is_pg else sqlite.INTEGER))

    metrics = select(
        hour, c.agent_instance_id, c.shop_id, c.agent_type, func.count(), count_if("completed"),
        count_if("failed"), count_if("opted_out"),
        func.coalesce(func.sum(c.response_time_ms).filter(c.status == "completed"), 0),
        func.coalesce(func.sum(c.prompt_tokens).filter(c.status.in_(TERMINAL_COLUMNS)), 0),
        func.coalesce(func.sum(c.completion_tokens).filter(c.status.in_(TERMINAL_COLUMNS)), 0),
        func.coalesce(func.sum(c.cost_usd).filter(c.status.in_(TERMINAL_COLUMNS)), 0),
    ).where(*where).group_by(hour, c.agent_instance_id, c.shop_id, c.agent_type)
    cols = ["hour", "agent_instance_id", "shop_id", "agent_type", "created", "completed", "failed", "opted_out",
            "response_ms_sum", "prompt_tokens", "completion_tokens", "cost_usd"]
    return session.execute(insert(AgentMetric).from_select(cols, metrics)).rowcount


def _hour_sql(session: Session | Connection, column: Any) -> Any:
    if _dialect_name(session) == "postgresql":
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%d %H:00:00.000000", column)


def bucket_sql(executor: Session | Connection, ms: Any) -> Any:
    """core.rollups.bucket_of in SQL, on PostgreSQL and SQLite."""
    at_least_1 = func.greatest(ms, 1) if _dialect_name(executor) == "postgresql" else func.max(ms, 1)
    return func.floor(func.ln(at_least_1) / _LOG_RATIO)


def insert_compact_buckets(session: Session | Connection, *, since: datetime | None, before: datetime) -> int:
    """Add the response-time histogram of conversations created in [SINCE, BEFORE) straight to the compact hourly
    tables (closed hours need no fine rows first); returns compact rows written."""
    from core.rollups_compact import add_to_compact

    if _dialect_name(session) == "postgresql":
        hour, bucket = "date_trunc('hour', created_at, 'UTC')", "floor(ln(greatest(response_time_ms, 1)) / :ratio)::int"
    else:
        hour = "strftime('%Y-%m-%d %H:00:00.000000', created_at)"
        bucket = "CAST(floor(ln(max(response_time_ms, 1)) / :ratio) AS INTEGER)"
    source = (f"SELECT {hour} AS hour, shop_id, agent_type, {bucket} AS bucket, count(*) AS n "
              "FROM agent_conversations WHERE status = 'completed' AND response_time_ms IS NOT NULL "
              f"AND created_at < :before {'AND created_at >= :since' if since else ''} GROUP BY 1, 2, 3, 4")
    params = {"ratio": _LOG_RATIO, "before": before, **({"since": since} if since else {})}
    return add_to_compact(session, source, params)


def insert_fine_buckets(session: Session | Connection, *, since: datetime | None = None) -> int:
    """Add the response-time histogram of conversations created since SINCE (all, when None) to the fine table,
    per hour × instance × bucket, as the worker does one by one; returns rows written."""
    c = Conversation
    hour = _hour_sql(session, c.created_at)
    bucket = bucket_sql(session, c.response_time_ms)
    buckets = select(hour, c.agent_instance_id, bucket, c.shop_id, c.agent_type, func.count()).where(
        c.status == "completed", c.response_time_ms.is_not(None), *([c.created_at >= since] if since else [])
    ).group_by(hour, c.agent_instance_id, bucket, c.shop_id, c.agent_type)
    return session.execute(insert(AgentResponseBucket).from_select(
        ["hour", "agent_instance_id", "bucket", "shop_id", "agent_type", "count"], buckets)).rowcount
