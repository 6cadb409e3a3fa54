"""Checks of the database: migrations, the seed's information_schema query, connections, the pool."""
from __future__ import annotations

import statistics
import time

from sqlalchemy import Engine, inspect, select, text

from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, warned
from core.db import is_postgres
from core.migrate import current_revision, head_revision
from core.models import Base, agent_tables

# The seed's own query ("Verify table creation"); SQLite has no information_schema, so its catalogue stands in.
SEED_TABLE_QUERY = ("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_name LIKE 'agent%'")
SQLITE_TABLE_QUERY = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'agent%'"
STABLE_SAMPLES = 10
POOL_WARN_SHARE = 0.8


def check_migrations_at_head(ctx: CheckContext) -> Outcome:
    """The schema is at the code's newest migration."""
    revision, head = current_revision(ctx.engine), head_revision()
    return verdict(revision == head, "schema revision", revision,
                   f"at head {head}" if revision == head else
                   f"at {revision or 'none'}, code expects {head}: run `python -m core db setup`")


def _listed_tables(engine: Engine) -> set[str]:
    query = SEED_TABLE_QUERY if is_postgres(engine) else SQLITE_TABLE_QUERY
    with engine.connect() as conn:
        return set(conn.execute(text(query)).scalars())


def check_agent_tables(ctx: CheckContext) -> Outcome:
    """The seed's information_schema query lists every agent table the code needs."""
    listed = _listed_tables(ctx.engine)
    wanted = [t for t in agent_tables() if t.startswith("agent")]
    missing = [t for t in wanted if t not in listed]
    present = len(wanted) - len(missing)
    others = len(listed) - present  # PostgreSQL's monthly partitions match 'agent%' too
    also = f"; the query also lists {others} partitions and other agent% tables" if others else ""
    return verdict(not missing, "agent tables present (information_schema)", present,
                   (f"missing: {', '.join(missing)}" if missing else f"all {len(wanted)} agent tables present") + also)


def _round_trip_ms(engine: Engine) -> float:
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return (time.perf_counter() - started) * 1000


def check_app_connection(ctx: CheckContext) -> Outcome:
    """The application's own engine connects; the round trip is timed."""
    ms = _round_trip_ms(ctx.engine)
    limit = ctx.settings.sc_db_query_p95_ms
    return verdict(ms < limit, "connection round trip (ms)", round(ms, 1),
                   f"{ctx.engine.dialect.name} answered in {ms:.1f} ms (limit {limit:g} ms)")


def check_tables_accessible(ctx: CheckContext) -> Outcome:
    """Every agent table exists and answers a read."""
    existing = set(inspect(ctx.engine).get_table_names())
    missing = [t for t in agent_tables() if t not in existing]
    if missing:
        return failed("agent tables readable", 0, f"missing: {', '.join(missing)}")
    with ctx.engine.connect() as conn:
        for name in agent_tables():
            conn.execute(select(text("1")).select_from(Base.metadata.tables[name]).limit(1)).all()
    return passed("agent tables readable", len(agent_tables()), "every agent table answered a read")


def check_connections_stable(ctx: CheckContext) -> Outcome:
    """Ten fresh connections in a row all succeed, with their p95 within the database query limit."""
    samples = [_round_trip_ms(ctx.engine) for _ in range(STABLE_SAMPLES)]
    p95 = sorted(samples)[int(0.95 * (len(samples) - 1))]
    limit = ctx.settings.sc_db_query_p95_ms
    value = {"samples": len(samples), "median_ms": round(statistics.median(samples), 1), "p95_ms": round(p95, 1)}
    return verdict(p95 < limit, "connection round trips", value, f"p95 {p95:.1f} ms (limit {limit:g} ms)")


def check_connection_pool(ctx: CheckContext) -> Outcome:
    """Connections in use (pg_stat_activity) against the server's limit and this process's pool."""
    if not is_postgres(ctx.engine):
        return passed("connection pool", None, "SQLite: one embedded file, no server connection pool to exhaust")
    with ctx.engine.connect() as conn:
        used = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")).scalar()
        limit = int(conn.execute(text("SHOW max_connections")).scalar())
    pool = ctx.engine.pool
    value = {"connections": used, "max_connections": limit, "pool_size": getattr(pool, "size", lambda: None)(),
             "pool_checked_out": getattr(pool, "checkedout", lambda: None)()}
    share = used / limit
    if share >= 1:
        return failed("connections in use", value, f"{used} of {limit}: the server refuses new connections")
    if share >= POOL_WARN_SHARE:
        return warned("connections in use", value, f"{used} of {limit} ({share:.0%}): close to exhaustion")
    return passed("connections in use", value, f"{used} of {limit} ({share:.0%})")
