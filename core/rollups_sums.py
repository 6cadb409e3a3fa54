"""Closed hours of agent_metrics folded into sums without the instance dimension: per hour and type, per hour and
shop, per hour, shop and type.

agent_metrics is keyed by hour × instance (the worker adds to one row per completion, never contending with
other instances); a day of it is 24 × instances rows, so a 24-hour read grew with how many instances were busy.
Like the histograms (core.rollups_compact), a fold moves the rows of closed hours, in the same transaction, into
the compact tables; readers add the compact rows to the fine rows that remain (the current hour, and completions
that arrived after their hour was folded), so a fold never changes a figure.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from core.models import AgentMetricHourlyByShop, AgentMetricHourlyByShopType, AgentMetricHourlyByType
from core.rollups import floor_hour
from core.rollups_compact import dialect_name, move_rows, note_hours, time_param

SUMS = ("created", "completed", "failed", "opted_out", "response_ms_sum", "prompt_tokens", "completion_tokens",
        "cost_usd")
# Each compact sums table and the columns (besides the hour) it keeps.
SUM_FOLDS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (AgentMetricHourlyByType, ("agent_type",)),
    (AgentMetricHourlyByShop, ("shop_id",)),
    (AgentMetricHourlyByShopType, ("shop_id", "agent_type")),
)


def _sums_insert(model: Any, keys: tuple[str, ...], source: str) -> str:
    """INSERT INTO the compact table one row per hour × KEYS of SOURCE, adding to rows already there."""
    table, cols = model.__tablename__, ", ".join(keys)
    sums = ", ".join(f"sum({c})" for c in SUMS)
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in SUMS)
    return (f"INSERT INTO {table} (hour, {cols}, {', '.join(SUMS)}) SELECT hour, {cols}, {sums} FROM {source} "
            f"WHERE true GROUP BY hour, {cols} ON CONFLICT (hour, {cols}) DO UPDATE SET {adds}")


def fold_closed_sums(executor: Session | Connection, *, before: datetime, touched: set[datetime] | None = None) -> int:
    """Move the agent_metrics rows of hours before BEFORE into the compact sums, in one set-based pass; returns how
    many rows were folded and adds their hours to TOUCHED. Call inside the caller's transaction."""
    if dialect_name(executor) != "postgresql":  # PostgreSQL's fold returns the hours it moved
        note_hours(executor, "agent_metrics", before, touched)
    n, hours = _fold(executor, "hour < :at", before)
    (touched if touched is not None else set()).update(hours)
    return n


def fold_current_sums(executor: Session | Connection, *, now: datetime) -> int:
    """Move the current hour's agent_metrics rows into its compact sums too, but for those a worker holds at this
    moment (core.rollups_compact.fold_current_histograms, for the sums); returns how many were folded."""
    return _fold(executor, "hour >= :at", floor_hour(now), skip_locked=True)[0]


def _fold(executor: Session | Connection, where: str, at: datetime, *, skip_locked: bool = False
          ) -> tuple[int, list[datetime]]:
    """Move the agent_metrics rows WHERE (`:at` bound to AT) into the compact sums: how many, and their hours
    (PostgreSQL). SKIP_LOCKED leaves the rows a worker holds where they are."""
    columns = f"hour, shop_id, agent_type, {', '.join(SUMS)}"
    if dialect_name(executor) == "postgresql":
        return move_rows(executor, "agent_metrics", columns, [_sums_insert(m, k, "moved") for m, k in SUM_FOLDS],
                         where, at, skip_locked=skip_locked)
    # SQLite: one writer at a time, so the rows read here are the rows deleted below.
    source = f"(SELECT {columns} FROM agent_metrics WHERE {where})"
    for model, keys in SUM_FOLDS:
        executor.execute(text(_sums_insert(model, keys, source)).bindparams(time_param("at", at)))
    return executor.execute(text(f"DELETE FROM agent_metrics WHERE {where}").bindparams(
        time_param("at", at))).rowcount, []


def insert_compact_sums(executor: Session | Connection, *, since: datetime | None, before: datetime) -> int:
    """Add the sums of conversations created in [SINCE, BEFORE) straight to the compact tables (`rollups rebuild`:
    closed hours need no agent_metrics rows first); returns compact rows written."""
    dialect = dialect_name(executor)
    hour = ("date_trunc('hour', created_at, 'UTC')" if dialect == "postgresql"
            else "strftime('%Y-%m-%d %H:00:00.000000', created_at)")
    done = "status IN ('completed', 'failed', 'opted_out')"

    def total(cond: str, col: str) -> str:
        return f"coalesce(sum(CASE WHEN {cond} THEN {col} END), 0)"
    figures = [total("status = 'completed'", "1"), total("status = 'failed'", "1"), total("status = 'opted_out'", "1"),
               total("status = 'completed'", "response_time_ms"), total(done, "prompt_tokens"),
               total(done, "completion_tokens"), total(done, "cost_usd")]
    source = (f"SELECT {hour} AS hour, shop_id, agent_type, count(*) AS created, "
              f"{', '.join(f'{f} AS {c}' for f, c in zip(figures, SUMS[1:]))} FROM agent_conversations "
              f"WHERE created_at < :before {'AND created_at >= :since' if since else ''} GROUP BY 1, 2, 3")
    params = [time_param("before", before)] + ([time_param("since", since)] if since else [])
    if dialect == "postgresql":  # the source is computed once for the three tables
        inserts = ", ".join(f"i{i} AS ({_sums_insert(m, k, 'src')} RETURNING 1)" for i, (m, k) in enumerate(SUM_FOLDS))
        written = " + ".join(f"(SELECT count(*) FROM i{i})" for i in range(len(SUM_FOLDS)))
        return int(executor.execute(text(f"WITH src AS ({source}), {inserts} SELECT {written}").bindparams(*params))
                   .scalar_one())
    return sum(executor.execute(text(f"WITH src AS ({source}) {_sums_insert(m, k, 'src')}").bindparams(*params))
               .rowcount for m, k in SUM_FOLDS)
