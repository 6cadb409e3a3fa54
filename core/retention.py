"""Retention: the raw conversations and messages of old months go once their rollups hold all they said.

`--keep-months N` keeps the current month and the N whole months before it; older months are dropped. A month is
dropped only when it is safe (`check_month`): nothing in it is still open (it could still change a figure), its
hourly rollups count exactly its conversations by outcome, none of its sums or response times wait in the fine
rows (the fold has run) and its daily histograms hold what its hourly ones hold. PostgreSQL detaches and drops the
month's two partitions (rows left in the DEFAULT partitions are deleted); SQLite deletes the month's rows in
batches. Review rows of those conversations go with them (on PostgreSQL no foreign key cascades to them).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, func, select
from sqlalchemy import text as sql_text

from core.models import (
    AgentMetric, AgentMetricHourlyByType, AgentResponseBucket, AgentResponseDailyByType, AgentResponseHourlyByType,
    Conversation,
)
from core.models.base import UTCDateTime
from core.models.conversations import OPEN_STATUSES
from core.partitions import add_months, is_partitioned, month_of_suffix, month_start, partitions_of, suffix
from core.rollups_compact import each_bucket

REVIEW_TABLES = ("agent_review_states", "agent_review_records", "agent_review_queue_items", "agent_judge_scores",
                 "agent_pii_reveals")
BATCH = 5000  # SQLite: conversations deleted per statement, so no statement holds a month of ids
OUTCOMES = ("completed", "failed", "opted_out")


@dataclass
class MonthReport:
    """One month retention looked at: its rows, and why it may not go (empty when it may)."""

    month: str
    conversations: int
    messages: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"month": self.month, "conversations": self.conversations, "messages": self.messages,
                "problems": self.problems}


def cutoff(now: datetime, keep_months: int) -> datetime:
    """The first instant retention keeps: the start of the month KEEP_MONTHS before NOW's."""
    return add_months(month_start(now), -keep_months)


def old_months(conn: Connection, before: datetime) -> list[datetime]:
    """The months before BEFORE that hold conversations (or, on PostgreSQL, still have a partition)."""
    months = set()
    if is_partitioned(conn):
        months = {m for m in map(month_of_suffix, partitions_of(conn, "agent_conversations")) if m and m < before}
    oldest = conn.scalar(select(func.min(Conversation.created_at)).where(Conversation.created_at < before))
    month = month_start(oldest) if oldest else before
    while month < before:  # rows in SQLite, or in PostgreSQL's DEFAULT partition
        if conn.scalar(select(_in_month(month).exists())):  # the first row answers: no count of a month
            months.add(month)
        month = add_months(month, 1)
    return sorted(months)


def _in_month(month: datetime) -> Any:
    c = Conversation
    return select(c.id).where(c.created_at >= month, c.created_at < add_months(month, 1))


def check_month(conn: Connection, month: datetime) -> MonthReport:
    """MONTH's rows and everything that makes dropping it unsafe (see the module's docstring)."""
    c, m, end = Conversation, AgentMetric, add_months(month, 1)
    in_month = (c.created_at >= month, c.created_at < end)
    raw = conn.execute(select(c.status, func.count()).where(*in_month).group_by(c.status)).all()
    by_status = Counter({status: n for status, n in raw})
    messages = conn.scalar(text("SELECT count(*) FROM agent_messages WHERE conversation_created_at >= :lo "
                                "AND conversation_created_at < :hi"), {"lo": month, "hi": end})
    report = MonthReport(suffix(month)[1:].replace("m", "-"), sum(by_status.values()), int(messages or 0))
    still_open = conn.scalar(select(func.count()).where(*in_month, text(OPEN_STATUSES)))
    if still_open:
        report.problems.append(f"{still_open:,} conversations are still open")
    rolled = [sum(col) for col in zip(*(  # the compact sums of folded hours plus any fine rows left (readers add both)
        conn.execute(select(func.coalesce(func.sum(t.created), 0),
                            *(func.coalesce(func.sum(getattr(t, s)), 0) for s in OUTCOMES))
                     .where(t.hour >= month, t.hour < end)).one()
        for t in (m, AgentMetricHourlyByType)))]
    if rolled[0] != report.conversations:
        report.problems.append(f"the hourly rollups count {rolled[0]:,} conversations, the month holds "
                               f"{report.conversations:,} (run `python -m core rollups rebuild`)")
    for status, counted in zip(OUTCOMES, rolled[1:]):
        if counted != by_status[status]:
            report.problems.append(f"the hourly rollups count {counted:,} {status}, the month holds "
                                   f"{by_status[status]:,}")
    if any(conn.scalar(select(func.count()).where(t.hour >= month, t.hour < end)) for t in (AgentResponseBucket, m)):
        report.problems.append("its rollups are not folded yet (the probe folds closed hours each cycle)")
    hourly, daily = _histogram_total(conn, AgentResponseHourlyByType, "hour", month, end), \
        _histogram_total(conn, AgentResponseDailyByType, "day", month, end)
    if hourly != daily:
        report.problems.append(f"its daily histograms hold {daily:,} response times, the hourly ones {hourly:,} "
                               "(run `python -m core rollups rebuild`)")
    return report


def _histogram_total(conn: Connection, model: Any, column: str, lo: datetime, hi: datetime) -> int:
    """How many response times the compact histograms of MODEL hold between LO and HI, added up in the database
    (a month is thousands of histograms, and only their total is needed)."""
    stmt = text(f"SELECT coalesce(sum(CAST(e.value AS BIGINT)), 0) FROM {model.__tablename__} "
                f"CROSS JOIN {each_bucket(conn.dialect.name, 'counts')} AS e "
                f"WHERE {column} >= :lo AND {column} < :hi")
    return int(conn.scalar(stmt, {"lo": lo, "hi": hi}))


def drop_month(conn: Connection, month: datetime) -> None:
    """Remove MONTH's conversations, messages and their review rows (inside the caller's transaction)."""
    for table in REVIEW_TABLES:  # keyed by conversation id only: found by the month's ids
        conn.execute(text(f"DELETE FROM {table} WHERE conversation_id IN (SELECT id FROM agent_conversations "
                          "WHERE created_at >= :lo AND created_at < :hi)"), {"lo": month, "hi": add_months(month, 1)})
    if is_partitioned(conn):
        _drop_partitions(conn, month)
    _delete_rows(conn, month)  # SQLite's rows, or what PostgreSQL's DEFAULT partitions hold of the month


def _drop_partitions(conn: Connection, month: datetime) -> None:
    """Detach and drop the month's partitions, messages first (their key refers to the conversations')."""
    existing = set(partitions_of(conn, "agent_conversations")) | set(partitions_of(conn, "agent_messages"))
    for table in ("agent_messages", "agent_conversations"):
        name = f"{table}_{suffix(month)}"
        if name in existing:
            conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
            conn.execute(text(f"DROP TABLE {name}"))


def _delete_rows(conn: Connection, month: datetime) -> None:
    """Delete the month's rows BATCH conversations at a time (messages first: no cascade is relied on)."""
    bounds = {"lo": month, "hi": add_months(month, 1), "n": BATCH}
    batch = ("SELECT id FROM agent_conversations WHERE created_at >= :lo AND created_at < :hi "
             "ORDER BY id LIMIT :n")
    while True:
        ids = list(conn.execute(text(batch), bounds).scalars())
        if not ids:
            return
        params = {"lo": bounds["lo"], "hi": bounds["hi"], "first": ids[0], "last": ids[-1]}
        conn.execute(text("DELETE FROM agent_messages WHERE conversation_created_at >= :lo AND "
                          "conversation_created_at < :hi AND conversation_id BETWEEN :first AND :last"), params)
        conn.execute(text("DELETE FROM agent_conversations WHERE created_at >= :lo AND created_at < :hi "
                          "AND id BETWEEN :first AND :last"), params)




def text(sql: str) -> TextClause:
    """SQL whose :lo and :hi are UTC timestamps (SQLite stores them as naive text, bound the models' way)."""
    clause = sql_text(sql)
    if ":lo" in sql:
        clause = clause.bindparams(bindparam("lo", type_=UTCDateTime()), bindparam("hi", type_=UTCDateTime()))
    return clause
