"""Load data generated inside PostgreSQL: `seed --test-data load` at millions of conversations.

Generating rows in Python and copying them in costs about 100 µs of interpreter time per conversation, which made
10 million conversations take most of an hour. Here PostgreSQL draws the same shape (core.seed.shape) with its own
random(), `generate_series` and a join to a few small tables of names and rendered texts, so the client only sends
one statement per chunk. A large load also drops the two tables' secondary indexes and builds them again at the
end: building an index once is several times cheaper than keeping eight indexes current row by row. All of it is
one transaction: a load that fails or is interrupted leaves the database as it was, indexes included.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, text

from core.bulk_load import set_aside
from core.llm import DEFAULT_MODEL, PRICES
from core.partitions import ensure_partitions
from core.seed import content, messages, shape
from core.templates import load_templates

CHUNK = 500_000  # conversations per statement: progress every few seconds
# From this many conversations the load is generated here (below, the row generator's cost does not matter).
IN_DATABASE_FROM = 100_000
# From this many, building indexes and constraints once is cheaper than keeping them current row by row.
REBUILD_INDEXES_FROM = 500_000


def write(engine: Engine, *, count: int, days: int, now: datetime, instances: list[dict[str, Any]],
          clients_by_shop: dict[int, list[dict[str, Any]]], first_conv_id: int,
          progress: Callable[[str], None] = lambda _m: None, chunk: int = CHUNK,
          rebuild_indexes: bool | None = None) -> tuple[int, int]:
    """Write COUNT conversations over the last DAYS days, with their messages; returns (conversations, messages)."""
    rebuild = count >= REBUILD_INDEXES_FROM if rebuild_indexes is None else rebuild_indexes
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        _lookup_tables(conn, instances, clients_by_shop)
        ensure_partitions(conn, now, since=now - timedelta(days=days))  # the rows go to their months, not DEFAULT
        rebuilt = set_aside(conn) if rebuild else []
        n_msg, started = 0, time.perf_counter()
        for lo in range(0, count, chunk):
            hi = min(count, lo + chunk) - 1
            params = {**_params(count=count, days=days, now=now, first=first_conv_id, lo=lo, hi=hi),
                      "n_inst": len(instances)}
            conn.execute(text("SELECT setseed(:s)"), {"s": (lo // chunk % 1000) / 1000})  # the same data every run
            conn.execute(text(_CONVERSATIONS), params)
            n_msg += conn.execute(text(_MESSAGES), params).rowcount
            rate = (hi + 1 + n_msg) / max(time.perf_counter() - started, 1e-9)
            progress(f"conversations {hi + 1:,}/{count:,}, messages {n_msg:,} ({rate:,.0f} rows/s, in PostgreSQL)")
        for ddl in rebuilt:
            progress(f"building {ddl.element.name}")
            conn.execute(ddl)
        conn.execute(text("ANALYZE agent_conversations; ANALYZE agent_messages"))  # the rollups' rebuild plans on these
    return count, n_msg


def _params(*, count: int, days: int, now: datetime, first: int, lo: int, hi: int) -> dict[str, Any]:
    p_in, p_out = (str(p) for p in PRICES[DEFAULT_MODEL])  # numeric, exact: rounded as core.llm.cost_usd rounds
    return {"first": first, "lo": lo, "hi": hi, "count": count, "span_s": days * 86400.0, "now": now,
            "pending_s": shape.PENDING_AGE.total_seconds(), "waiting_s": shape.WAITING_AGE.total_seconds(),
            "failed": shape.FAILED_SHARE, "opted": shape.FAILED_SHARE + shape.OPTED_OUT_SHARE,
            "waiting": shape.FAILED_SHARE + shape.OPTED_OUT_SHARE + shape.WAITING_SHARE,
            "mu": math.log(shape.REPLY_MEDIAN_MS), "sigma": shape.REPLY_SIGMA, "rt_min": shape.REPLY_MIN_MS,
            "pt_lo": shape.PROMPT_TOKENS[0], "pt_n": shape.PROMPT_TOKENS[1] - shape.PROMPT_TOKENS[0],
            "ct_lo": shape.COMPLETION_TOKENS[0], "ct_n": shape.COMPLETION_TOKENS[1] - shape.COMPLETION_TOKENS[0],
            "d_lo": shape.START_DELAY_S[0], "d_n": shape.START_DELAY_S[1] - shape.START_DELAY_S[0],
            "failed_after": shape.FAILED_AFTER_S, "stop_lo": shape.STOP_AFTER_MIN[0],
            "stop_n": shape.STOP_AFTER_MIN[1] - shape.STOP_AFTER_MIN[0], "reply_lo": shape.REPLY_AFTER_MIN[0],
            "reply_n": shape.REPLY_AFTER_MIN[1] - shape.REPLY_AFTER_MIN[0], "reply_share": shape.CLIENT_REPLY_SHARE,
            "p_in": p_in, "p_out": p_out, "errors": content.ERRORS, "replies": content.CLIENT_REPLIES,
            "date_mark": messages.DATE_MARK, "time_mark": messages.TIME_MARK}


def _lookup_tables(conn: Connection, instances: list[dict[str, Any]],
                   clients_by_shop: dict[int, list[dict[str, Any]]]) -> None:
    """Temporary tables the statements draw from: instances by number, each shop's clients by number, and each
    agent type's first message to every client, rendered as the row generator renders it but for the appointment's
    date and time, which depend on the moment of sending and are filled in by _MESSAGES."""
    specs = load_templates()
    conn.execute(text("CREATE TEMP TABLE seed_inst (idx int PRIMARY KEY, id int, shop_id int, agent_type text,"
                      " channel text, n_clients int) ON COMMIT DROP"))
    conn.execute(text("CREATE TEMP TABLE seed_client (shop_id int, idx int, id int, first_name text,"
                      " PRIMARY KEY (shop_id, idx)) ON COMMIT DROP"))
    conn.execute(text("CREATE TEMP TABLE seed_text (agent_type text, client_id int, content text, offset_s float8,"
                      " tz text, PRIMARY KEY (agent_type, client_id)) ON COMMIT DROP"))
    conn.execute(text("INSERT INTO seed_inst VALUES (:idx, :id, :shop_id, :agent_type, :channel, :n)"), [
        {"idx": i, "id": r["id"], "shop_id": r["shop_id"], "agent_type": r["agent_type"],
         "channel": specs[r["agent_type"]].channel, "n": len(clients_by_shop[r["shop_id"]])}
        for i, r in enumerate(instances)])
    conn.execute(text("INSERT INTO seed_client VALUES (:shop_id, :idx, :id, :first_name)"), [
        {"shop_id": shop, "idx": i, "id": c["id"], "first_name": c["first_name"]}
        for shop, clients in clients_by_shop.items() for i, c in enumerate(clients)])
    conn.execute(text("INSERT INTO seed_text SELECT * FROM unnest(CAST(:types AS text[]), CAST(:ids AS int[]),"
                      " CAST(:texts AS text[]), CAST(:offsets AS float8[]), CAST(:zones AS text[]))"),
                 _first_messages(conn, instances, specs))
    conn.execute(text("ANALYZE seed_inst; ANALYZE seed_client; ANALYZE seed_text"))


def _first_messages(conn: Connection, instances: list[dict[str, Any]], specs: dict[str, Any]) -> dict[str, list]:
    """seed_text's columns: every instance's first message to each client of its shop, dates marked."""
    by_shop: dict[int, list[tuple[str, dict]]] = {}
    for r in instances:
        by_shop.setdefault(r["shop_id"], []).append((r["agent_type"], r.get("config") or {}))
    cols: dict[str, list] = {"types": [], "ids": [], "texts": [], "offsets": [], "zones": []}
    sent = datetime.now(timezone.utc)  # any moment: only the marked date and time depend on it
    for client_id, facts in messages.client_facts(conn).items():
        for agent_type, config in by_shop.get(facts.shop_id, []):
            offset = messages.APPOINTMENT_OFFSET.get(agent_type, messages.OTHER_OFFSET)
            cols["types"].append(agent_type)
            cols["ids"].append(client_id)
            cols["texts"].append(messages.first_message(specs[agent_type], facts, sent, config, marked_dates=True))
            cols["offsets"].append(offset.total_seconds())
            cols["zones"].append(facts.shop_timezone)
    return cols


# One row per conversation number g: an instance and one of its shop's clients at random, a creation time spread
# evenly over the span (so ids grow with time, as a live system's do), a status by age and chance, and the
# reply's timing, tokens and cost as core.seed.generate draws them. random() sits in LATERAL subqueries that
# mention g, so PostgreSQL draws again for every row.
_CONVERSATIONS = """
INSERT INTO agent_conversations (id, agent_instance_id, shop_id, client_id, appointment_id, agent_type, channel,
    status, created_at, started_at, completed_at, response_time_ms, prompt_tokens, completion_tokens, cost_usd,
    attempts, error, provider)
SELECT :first + g, i.id, i.shop_id, c.id, c.id, i.agent_type, i.channel, s.status, t.created,
    CASE WHEN s.status <> 'pending' THEN t.started END,
    CASE s.status WHEN 'failed' THEN t.started + make_interval(secs => :failed_after)
                  WHEN 'completed' THEN t.sent WHEN 'opted_out' THEN t.sent + make_interval(mins => t.stop_min) END,
    CASE WHEN s.status IN ('completed', 'opted_out', 'waiting_response') THEN t.rt END,
    CASE WHEN s.status IN ('pending', 'failed') THEN 0 ELSE t.pt END,
    CASE WHEN s.status IN ('pending', 'failed') THEN 0 ELSE t.ct END,
    CASE WHEN s.status IN ('pending', 'failed') THEN 0 ELSE round((t.pt * CAST(:p_in AS numeric) + t.ct * CAST(:p_out AS numeric)) / 1000000, 6) END,
    CASE s.status WHEN 'pending' THEN 0 WHEN 'failed' THEN 3 ELSE 1 END,
    CASE WHEN s.status = 'failed' THEN (CAST(:errors AS text[]))[1 + floor(r.pick_error * cardinality(CAST(:errors AS text[])))::int] END,
    CASE WHEN s.status <> 'pending' THEN 'openai' END
FROM generate_series(:lo, :hi) AS g
CROSS JOIN LATERAL (SELECT g AS n, random() AS inst, random() AS client, random() AS roll, random() AS jitter,
    random() AS u1, random() AS u2, random() AS delay, random() AS pt, random() AS ct, random() AS stop,
    random() AS pick_error) AS r
JOIN seed_inst AS i ON i.idx = floor(r.inst * :n_inst)::int
JOIN seed_client AS c ON c.shop_id = i.shop_id AND c.idx = floor(r.client * i.n_clients)::int
CROSS JOIN LATERAL (SELECT
    CAST(:now AS timestamptz) - make_interval(secs => :span_s * (1 - (r.n + r.jitter) / :count)) AS created,
    greatest(:rt_min, floor(exp(:mu + :sigma * sqrt(-2 * ln(1 - r.u1)) * cos(2 * pi() * r.u2))))::int AS rt,
    :pt_lo + floor(r.pt * :pt_n)::int AS pt, :ct_lo + floor(r.ct * :ct_n)::int AS ct,
    :stop_lo + floor(r.stop * :stop_n)::int AS stop_min) AS base
CROSS JOIN LATERAL (SELECT base.created, base.rt, base.pt, base.ct, base.stop_min,
    base.created + make_interval(secs => :d_lo + r.delay * :d_n) AS started,
    base.created + make_interval(secs => :d_lo + r.delay * :d_n) + make_interval(secs => base.rt / 1000.0) AS sent,
    extract(epoch FROM CAST(:now AS timestamptz) - base.created) AS age_s) AS t
CROSS JOIN LATERAL (SELECT CASE
    WHEN t.age_s < :pending_s THEN 'pending'
    WHEN r.roll < :failed THEN 'failed'
    WHEN r.roll < :opted THEN 'opted_out'
    WHEN t.age_s < :waiting_s AND r.roll < :waiting THEN 'waiting_response'
    ELSE 'completed' END AS status) AS s
"""

# The agent's message of every conversation that got a reply, the client's STOP of each opt-out (at the time the
# conversation ended), and a client answer to about half of the completed ones.
_MESSAGES = """
INSERT INTO agent_messages (conversation_id, role, content, created_at, prompt_tokens, completion_tokens,
    latency_ms, idempotency_key, conversation_created_at)
SELECT v.id, 'agent', replace(replace(x.content, :date_mark, to_char(a.at, 'FMDay, Mon DD')),
        :time_mark, to_char(a.at, 'FMHH12:MI AM')),
    m.sent, v.prompt_tokens, v.completion_tokens, v.response_time_ms, 'conv:' || v.id || ':step:0', v.created_at
FROM agent_conversations AS v
JOIN seed_text AS x ON x.agent_type = v.agent_type AND x.client_id = v.client_id
CROSS JOIN LATERAL (SELECT v.started_at + make_interval(secs => v.response_time_ms / 1000.0) AS sent) AS m
-- the appointment on the hour (core.seed.messages.appointment_at), on the shop's clock
CROSS JOIN LATERAL (SELECT date_trunc('hour', m.sent + make_interval(secs => x.offset_s), 'UTC') AT TIME ZONE x.tz
    AS at) AS a
WHERE v.id BETWEEN :first + :lo AND :first + :hi AND v.status IN ('completed', 'opted_out', 'waiting_response')
UNION ALL
SELECT v.id, 'client', 'STOP', v.completed_at, 0, 0, NULL, NULL, v.created_at
FROM agent_conversations AS v
WHERE v.id BETWEEN :first + :lo AND :first + :hi AND v.status = 'opted_out'
UNION ALL
SELECT v.id, 'client', (CAST(:replies AS text[]))[1 + floor(q.pick * cardinality(CAST(:replies AS text[])))::int],
    v.started_at + make_interval(secs => v.response_time_ms / 1000.0) + make_interval(mins => q.after), 0, 0, NULL, NULL,
    v.created_at
FROM agent_conversations AS v
CROSS JOIN LATERAL (SELECT v.id AS n, random() AS answered, random() AS pick,
    :reply_lo + floor(random() * :reply_n)::int AS after) AS q
WHERE v.id BETWEEN :first + :lo AND :first + :hi AND v.status = 'completed' AND q.answered < :reply_share
"""
