"""Issue 11: Agent Health queries whose cost follows hours × types × shops. Each query's p95 at 1M conversations and
its growth from 100k; the instance-keyed histogram read (the table before 0010), the stored histograms decoded row by
row (the read before 0013) and pandas over raw rows beside it.

    python -m bench health_queries [--reps 20] [--small-db NAME] [--no-page] [--huge-db NAME] [--minute M]
    python -m bench health_queries --first-hour [--huge-db NAME]   # the partial first hour only, minute by minute
    python -m bench health_queries --current-hour [--huge-db NAME]  # the current hour folded, against row by row

--huge-db adds a third size, e.g. the 10M database `python -m bench seed_load --conversations 10000000 --keep-as
agentops_bench_10m` leaves, with each query's growth from 1M to it.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import psutil

from bench.common import loaded_postgres, pct, table, time_ms, use_database

SMALL_DB = "agentops_bench_100k"
# The histogram table as it was before migration 0010 (hour × instance × bucket), rebuilt from the raw rows
# for the peer read; dropped when the bench is done.
PEER_TABLE = "bench_instance_buckets"


def _queries(s, actor, hours: int, now: datetime | None) -> dict[str, Callable[[], object]]:  # noqa: ANN001
    from core.queries import metrics

    return {
        "summary": lambda: metrics.get_summary(s, actor=actor, window_hours=hours, now=now),
        "timeseries": lambda: metrics.get_timeseries(s, actor=actor, window_hours=hours, now=now),
        "by agent type": lambda: metrics.get_breakdown(s, actor=actor, window_hours=hours, by="agent_type", now=now),
        "by shop": lambda: metrics.get_breakdown(s, actor=actor, window_hours=hours, by="shop", now=now),
    }


def window_end(minute: int | None) -> datetime | None:
    """The windows' end: now, or the next time at MINUTE past the hour (ahead of the clock by under an hour; nothing
    is created in between). The minute decides how much of the first hour is read raw (_raw_minutes)."""
    if minute is None:
        return None
    from core.models import utcnow

    now = utcnow()
    return now + timedelta(minutes=(minute - now.minute) % 60)


ROWS_READ = (
    "SELECT (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_xact_user_tables)"
    " + (SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0) FROM pg_index i"
    "    JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    "    WHERE n.nspname = 'public')")


def _rows_read(s, fn: Callable[[], object]) -> int:  # noqa: ANN001
    """Table and index rows one call reads, from this transaction's own statistics: the cost that follows
    the data, free of the machine's noise."""
    from sqlalchemy import text

    before = s.execute(text(ROWS_READ)).scalar_one()
    fn()
    return int(s.execute(text(ROWS_READ)).scalar_one() - before)


def measure(url: str, reps: int, now: datetime | None = None) -> dict[tuple[str, str, str], tuple[float, int]]:
    """p95 (ms) and rows read per (actor, query, window) on the database at URL, each query warmed once first."""
    from core.auth import Actor, Role, system_actor
    from core.db import read_session
    from core.queries import health

    engine, out = use_database(url), {}
    support = Actor(username="sam", role=Role.SUPPORT, shop_ids=frozenset({1}), source="bench")
    # Timed as the page runs them (each figure opens its own snapshot); rows are counted from the statistics of one
    # transaction, so in a session already REPEATABLE READ, which the figures then read in place.
    with read_session(engine) as s, read_session(engine) as counted:
        counted.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        for who, actor in (("all shops", system_actor("bench")), ("one shop", support)):
            for window, hours in (("24h", 24), ("30d", 720)):
                tallied = _queries(counted, actor, hours, now)
                for name, fn in _queries(s, actor, hours, now).items():
                    fn()
                    out[(who, name, window)] = pct(time_ms(fn, reps), 0.95), _rows_read(counted, tallied[name])
        workers = lambda: health.list_workers(s, actor=system_actor("b"))  # noqa: E731
        out[("all shops", "workers", "–")] = pct(time_ms(workers, reps), 0.95), _rows_read(s, workers)
    return out


FIRST_HOUR_MINUTES = (1, 10, 20, 29, 31, 40, 50, 59)


def first_hour_rows(url: str, size: str, reps: int) -> list[tuple[str, str, str, str]]:
    """The 24-hour figures and the 30-day summary over all shops at windows ending at FIRST_HOUR_MINUTES past the
    hour, as now (the first hour read whole less its minutes before the start, or the minutes after it from minute
    30; open conversations counted row by row only in the queue) against the read before (the minutes after the
    start always, every open conversation counted row by row),
    same database, same run. The worst minute of each is reported."""
    from contextlib import ExitStack
    from unittest import mock

    from core.auth import system_actor
    from core.db import read_session
    from core.queries import metrics, rollup_reads

    def count_every_open(session, actor, since, until, sums):  # noqa: ANN001, ANN202 - the read before
        return metrics._count_open(session, actor, since, until, metrics.OPEN)

    engine, actor, rows = use_database(url), system_actor("bench"), []
    found: dict[tuple[str, bool], dict[int, tuple[float, int]]] = {}

    def day_and_month(session, now: datetime) -> dict[str, Callable[[], object]]:  # noqa: ANN001
        return {**_queries(session, actor, 24, now), "summary 30d": _queries(session, actor, 720, now)["summary"]}
    with read_session(engine) as s, read_session(engine) as counted:
        counted.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        for minute in FIRST_HOUR_MINUTES:  # both reads at each minute in turn: the machine's load falls on both
            now = window_end(minute)
            for before in (False, True):
                with ExitStack() as patched:
                    if before:
                        patched.enter_context(mock.patch.object(rollup_reads, "WHOLE_FIRST_HOUR_BELOW_MINUTES", 0))
                        patched.enter_context(mock.patch.object(metrics, "_open_counts", count_every_open))
                    tallied = day_and_month(counted, now)
                    for name, fn in day_and_month(s, now).items():
                        fn()
                        found.setdefault((name, before), {})[minute] = (pct(time_ms(fn, reps), 0.95),
                                                                         _rows_read(counted, tallied[name]))

    def worst(by_minute: dict[int, tuple[float, int]]) -> str:
        ms_minute = max(by_minute, key=lambda m: by_minute[m][0])
        rows_minute = max(by_minute, key=lambda m: by_minute[m][1])
        return (f"worst p95 {by_minute[ms_minute][0]:.1f} ms (minute {ms_minute}), worst rows read "
                f"{by_minute[rows_minute][1]:,} (minute {rows_minute}); at minute 1: {by_minute[1][0]:.1f} ms, "
                f"{by_minute[1][1]:,} rows")

    for name in ("summary", "timeseries", "by agent type", "by shop", "summary 30d"):
        label = "summary (30d, all shops)" if name == "summary 30d" else f"{name} (24h, all shops)"
        rows.append((f"{label} at {size}, windows ending at minutes "
                     f"{', '.join(map(str, FIRST_HOUR_MINUTES))}", worst(found[(name, False)]), "≤ 20 ms",
                     f"the minutes after the start always, every open conversation counted (before): "
                     f"{worst(found[(name, True)])}"))
    return rows


def current_hour_rows(url: str, size: str, reps: int) -> list[tuple[str, str, str, str]]:
    """The 24-hour figures at minute 59 of the database's last hour of traffic, that hour's rollups as the worker
    leaves them (a row per instance, and per instance and bucket: the read before the probe folded the current hour)
    against folded as the probe's cycle now leaves them. The database is left folded."""
    from sqlalchemy import delete, func, select

    from core.auth import system_actor
    from core.db import read_session, write_bind
    from core.models import AgentMetric, AgentResponseBucket, Conversation
    from core.probes import vacuum_fine_rows
    from core.rollups import floor_hour, insert_fine_buckets, insert_metrics
    from core.rollups_compact import FOLDS
    from core.rollups_daily import fold_current_hour
    from core.rollups_sums import SUM_FOLDS

    engine, actor = use_database(url), system_actor("bench")
    with read_session(engine) as s:
        last = floor_hour(s.scalar(select(func.max(Conversation.created_at))))
    now, found = last + timedelta(minutes=59), {}
    for folded in (False, True):
        with write_bind(engine).begin() as conn:
            if folded:  # what the probe's cycle does: fold, then VACUUM the fine tables
                fold_current_hour(conn, now=now)
            else:  # the hour as the worker leaves it, row by row
                for model in (AgentMetric, AgentResponseBucket, *(m for m, _ in SUM_FOLDS + FOLDS)):
                    conn.execute(delete(model).where(model.hour >= last))
                insert_metrics(conn, since=last)
                insert_fine_buckets(conn, since=last)
        vacuum_fine_rows(engine)  # both ways: the index entries of rows deleted above are not read either way
        with read_session(engine) as s, read_session(engine) as counted:
            counted.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            tallied = _queries(counted, actor, 24, now)
            for name, fn in _queries(s, actor, 24, now).items():
                fn()
                found[(name, folded)] = pct(time_ms(fn, reps), 0.95), _rows_read(counted, tallied[name])
    return [(f"{name} (24h, all shops) at {size}, at minute 59 of the current hour: p95; rows read",
             f"{found[(name, True)][0]:.1f} ms; {found[(name, True)][1]:,} rows", "≤ 20 ms",
             f"the hour's rows as the worker leaves them (before): {found[(name, False)][0]:.1f} ms; "
             f"{found[(name, False)][1]:,} rows") for name in ("summary", "timeseries", "by agent type", "by shop")]


def peer_histogram_reads(url: str, reps: int) -> list[tuple[str, str, str, str]]:
    """The histogram part of each query read from the compact rows against the instance-keyed table, same plan."""
    from sqlalchemy import text

    from core.auth import system_actor
    from core.db import read_session, write_bind
    from core.models import utcnow
    from core.queries import rollup_reads
    from core.rollups import floor_hour

    engine, actor = use_database(url), system_actor("bench")
    with write_bind(engine).begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {PEER_TABLE}"))
        conn.execute(text(
            f"CREATE TABLE {PEER_TABLE} AS SELECT date_trunc('hour', created_at, 'UTC') AS hour, agent_instance_id, "
            "floor(ln(greatest(response_time_ms, 1)) / ln(1.05))::int AS bucket, shop_id, agent_type, count(*) AS count "
            "FROM agent_conversations WHERE status = 'completed' AND response_time_ms IS NOT NULL "
            "GROUP BY 1, 2, 3, 4, 5"))
        conn.execute(text(f"ALTER TABLE {PEER_TABLE} ADD PRIMARY KEY (hour, agent_instance_id, bucket)"))
        conn.execute(text(f"ANALYZE {PEER_TABLE}"))
        peer_rows = conn.execute(text(f"SELECT count(*) FROM {PEER_TABLE}")).scalar_one()
    rows = []
    with read_session(engine) as s:
        for window, hours, by in (("24h", 24, "hour"), ("24h", 24, "shop_id")):
            current = floor_hour(utcnow())
            plan = rollup_reads.Plan(current - timedelta(hours=hours - 1), hourly=[(current - timedelta(hours=hours - 1),
                                                                                    current)])
            new_read = lambda p=plan, b=by: rollup_reads.histograms(s, actor=actor, plan=p, by=b)  # noqa: E731
            old_read = lambda p=plan, b=by: _instance_keyed(s, p, b)  # noqa: E731
            ours, theirs = pct(time_ms(new_read, reps), 0.95), pct(time_ms(old_read, reps), 0.95)
            rows.append((f"histogram by {by}, {hours - 1} whole hours: p95; rows read",
                         f"{ours:.1f} ms; {_rows_read(s, new_read):,} rows", "–",
                         f"instance-keyed table ({peer_rows:,} rows): {theirs:.1f} ms ({theirs / ours:.1f}× slower); "
                         f"{_rows_read(s, old_read):,} rows"))
    with write_bind(engine).begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {PEER_TABLE}"))
    return rows + [_decoded_per_row_read(engine, reps)]


def _decoded_per_row_read(engine, reps: int) -> tuple[str, str, str, str]:  # noqa: ANN001
    """A month of histograms by shop: joined as text and summed by numpy against each row decoded as JSON and
    merged in Python (the read before 0013), over the same compact rows."""
    from collections import Counter

    from sqlalchemy import func, select

    from core.auth import system_actor
    from core.db import read_session
    from core.models import AgentResponseBucket, AgentResponseDailyByShop, AgentResponseHourlyByShop, utcnow
    from core.queries import rollup_reads

    actor = system_actor("bench")
    with read_session(engine) as s:
        full = rollup_reads.plan_window(s, actor=actor, since=utcnow() - timedelta(hours=720))
        plan = rollup_reads.Plan(full.since, hourly=full.hourly, days=full.days)  # the stored rows, no raw edge
        day, hour, fine = AgentResponseDailyByShop, AgentResponseHourlyByShop, AgentResponseBucket

        def per_row() -> dict:
            merged: dict = {}
            for model, where in ((day, day.day.in_(plan.days)), (hour, rollup_reads.in_ranges(hour.hour, plan.hourly))):
                for shop, counts in s.execute(select(model.shop_id, model.counts).where(where)):
                    merged.setdefault(shop, Counter()).update({int(b): int(n) for b, n in counts.items()})
            # The fine rows of hours not folded yet (the current hour at least), read alike by both.
            for shop, bucket, n in s.execute(select(fine.shop_id, fine.bucket, func.sum(fine.count)).where(
                    rollup_reads.in_ranges(fine.hour, plan.hourly)).group_by(fine.shop_id, fine.bucket)):
                merged.setdefault(shop, Counter())[int(bucket)] += int(n)
            return merged

        ours_fn = lambda: rollup_reads.histograms(s, actor=actor, plan=plan, by="shop_id")  # noqa: E731
        assert {k: dict(v) for k, v in ours_fn().items()} == {k: dict(v) for k, v in per_row().items()}
        ours, theirs = pct(time_ms(ours_fn, reps), 0.95), pct(time_ms(per_row, reps), 0.95)
        return ("histograms by shop_id, 30 days of stored rows: p95; rows read",
                f"{ours:.1f} ms (joined as text, summed by numpy); {_rows_read(s, ours_fn):,} rows", "–",
                f"each row decoded as JSON, merged in Python (before 0013): {theirs:.1f} ms "
                f"({theirs / ours:.1f}× slower); {_rows_read(s, per_row):,} rows")


def _instance_keyed(s, plan, by: str) -> dict:  # noqa: ANN001
    """The read before 0010: sum the hour × instance × bucket rows of the whole hours, grouped in SQL."""
    from sqlalchemy import text

    (a, b), = plan.hourly
    key = "hour" if by == "hour" else "shop_id"
    rows = s.execute(text(f"SELECT {key}, bucket, sum(count) FROM {PEER_TABLE} WHERE hour >= :a AND hour < :b "
                          f"GROUP BY {key}, bucket"), {"a": a, "b": b})
    out: dict = {}
    for k, bucket, n in rows:
        out.setdefault(k, {})[bucket] = n
    return out


def _existing(name: str) -> tuple[str, str]:
    """The URL of database NAME, brought to the newest schema with fresh daily rollups, and its size ('10M')."""
    from sqlalchemy import create_engine, text

    from bench import common

    url = common.database_url(name)
    common._bring_up_to_date(url)
    probe = create_engine(url)
    with probe.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM agent_conversations")).scalar_one()
    probe.dispose()
    return url, f"{round(n / 1e6):,}M" if n >= 1_000_000 else f"{round(n / 1e3):,}k"


def small_database(name: str) -> str:
    """A PostgreSQL database of 100,000 conversations from `seed --test-data load`, kept between runs."""
    from sqlalchemy import create_engine, text

    from bench import common

    url = common.database_url(name)
    try:
        probe = create_engine(url)
        with probe.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM agent_conversations")).scalar_one()
        probe.dispose()
        if n >= 100_000:
            common._bring_up_to_date(url)
            return url
    except Exception:  # noqa: BLE001 - missing: build it
        pass
    with common.scratch_postgres(name, keep=True) as url:
        from core.auth import system_actor
        from core.seed.runner import seed

        seed(actor=system_actor("bench"), engine=use_database(url), size="load", conversations=100_000)
    common._bring_up_to_date(url)
    return url


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--small-db", default=SMALL_DB)
    ap.add_argument("--no-page", action="store_true")
    ap.add_argument("--huge-db", help="an existing database seeded by `seed --test-data load` (e.g. 10M)")
    ap.add_argument("--minute", type=int, choices=range(60), metavar="0-59",
                    help="end the windows at this minute past the hour (29 and 31: the most raw minutes, 29)")
    ap.add_argument("--first-hour", action="store_true",
                    help="only the 24-hour figures, minute by minute, against the read before (first hour, open)")
    ap.add_argument("--current-hour", action="store_true",
                    help="only the 24-hour figures with the current hour folded by the probe, against row by row")
    args, _ = ap.parse_known_args(argv)
    big_url = loaded_postgres()
    if args.current_hour:
        rows = current_hour_rows(big_url, "1M", args.reps)
        if args.huge_db:
            rows += current_hour_rows(*_existing(args.huge_db), args.reps)
        return table("Agent Health, the current hour folded by the probe's cycle (PostgreSQL)", rows)
    if args.first_hour:
        rows = first_hour_rows(big_url, "1M", args.reps)
        if args.huge_db:
            huge_url, huge_size = _existing(args.huge_db)
            rows += first_hour_rows(huge_url, huge_size, args.reps)
        return table("Agent Health, the window's partial first hour and its open conversations (PostgreSQL)", rows)
    small = measure(small_database(args.small_db), args.reps, window_end(args.minute))
    big = measure(big_url, args.reps, window_end(args.minute))
    huge_url, huge_size = _existing(args.huge_db) if args.huge_db else ("", "")
    huge = measure(huge_url, args.reps, window_end(args.minute)) if huge_url else {}
    minute = window_end(args.minute).minute if args.minute is not None else None
    rows = []
    for key, (ms, read) in big.items():
        who, name, window = key
        small_ms, small_read = small[key]
        figure = (f"{ms:.1f} ms at 1M, {small_ms:.1f} ms at 100k ({ms / small_ms:.2f}×); "
                  f"{read:,} rows at 1M, {small_read:,} at 100k ({read / max(small_read, 1):.2f}×)")
        if key in huge:
            huge_ms, huge_read = huge[key]
            figure += (f"; at {huge_size} {huge_ms:.1f} ms ({huge_ms / ms:.2f}× of 1M), "
                       f"{huge_read:,} rows ({huge_read / max(read, 1):.2f}×)")
        rows.append((f"{name} ({window}, {who}): p95; rows read", figure, "≤ 20 ms; ≤ 1.5×", "–"))
    rows += peer_histogram_reads(big_url, args.reps)
    engine = use_database(big_url)
    from core.auth import system_actor
    from core.db import read_session
    from core.queries import metrics

    with read_session(engine) as s:
        ours = time_ms(lambda: metrics.get_summary(s, actor=system_actor("b"), window_hours=720), 3)
    page_rows = [] if args.no_page else _page_rows(args.reps)  # before pandas fills this process with a million rows
    naive = time_ms(lambda: _naive_summary(engine), 3)
    rows.append(("summary over 30 d, median", f"{pct(ours, 0.5):.1f} ms", "–",
                 f"pd.read_sql + groupby: {pct(naive, 0.5):,.0f} ms ({pct(naive, 0.5) / pct(ours, 0.5):,.0f}× slower)"))
    rows += page_rows
    sizes = f"{huge_size}, 1M and 100k" if huge else "1,000,000 and 100,000"
    when = (f"windows ending at minute {minute} of the hour: {_raw_minutes(minute)} raw minutes" if minute is not None
            else f"windows ending now, {_utc_minute()} minutes past the hour")
    return table(f"Agent Health (PostgreSQL, {sizes} conversations; {when})", rows)


def _raw_minutes(minute: int) -> int:
    """Minutes of raw conversations a window starting MINUTE past its hour reads."""
    from core.queries.rollup_reads import WHOLE_FIRST_HOUR_BELOW_MINUTES

    return minute if 0 < minute < WHOLE_FIRST_HOUR_BELOW_MINUTES else (60 - minute) % 60


def _utc_minute() -> int:
    from core.models import utcnow

    return utcnow().minute


def _naive_summary(engine) -> dict:  # noqa: ANN001
    """The naive way: every conversation of the window into pandas, then group."""
    import pandas as pd

    df = pd.read_sql("SELECT status, response_time_ms, prompt_tokens, completion_tokens, cost_usd "
                     "FROM agent_conversations WHERE created_at >= now() - interval '30 days'", engine)
    finished = df[df.status.isin(["completed", "failed"])]
    return {"by_status": df.groupby("status").size().to_dict(),
            "error_rate": (finished.status == "failed").mean(),
            "p95": df.loc[df.status == "completed", "response_time_ms"].quantile(0.95)}


def _page_rows(reps: int) -> list[tuple[str, str, str, str]]:
    """The whole page script through AppTest: warm process, fresh cache each run; and memory growth."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from core.auth import system_actor
    from core.db import get_engine
    from core.seed.runner import demo_password, seed_demo_users
    from dashboard import data

    seed_demo_users(actor=system_actor("bench"), engine=get_engine())
    app = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=60)
    at.run()
    at.text_input[0].input("po")
    at.text_input[1].input(demo_password("po"))
    at.button[0].click()
    at.run()
    import gc

    for _ in range(3):  # warm up, then start counting from a collected heap
        data.health_figures.clear()
        at.run()
    gc.collect()
    proc = psutil.Process()
    rss_before = proc.memory_info().rss / 1e6
    cold, cached = [], []
    for _ in range(reps):
        data.health_figures.clear()
        started = time.perf_counter()
        at.run()
        cold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        at.run()
        cached.append((time.perf_counter() - started) * 1000)
    gc.collect()
    growth = proc.memory_info().rss / 1e6 - rss_before
    assert not at.exception, at.exception
    return [("page script (AppTest, warm process, empty cache), p95", f"{pct(cold, 0.95):.0f} ms", "< 1 s", "–"),
            ("page script (AppTest, cached reads), p95", f"{pct(cached, 0.95):.0f} ms", "< 1 s", "–"),
            (f"console process memory growth over {2 * reps} page runs", f"{growth:+.1f} MB", "< 100 MB", "–")]
