"""Issue 5: Agent Health on 1,000,000 conversations: each query's p95, the page script, memory; naive pandas beside it."""
from __future__ import annotations

import argparse
import time

import psutil

from bench.common import loaded_postgres, pct, table, use_database


def _time(fn, reps: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    args, _ = ap.parse_known_args(argv)
    from core.auth import system_actor
    from core.db import read_session
    from core.queries import health, metrics

    engine, actor = use_database(loaded_postgres()), system_actor("bench")
    rows = []
    with read_session(engine) as s:
        for window in ("24h", "30d"):
            hours = metrics.WINDOWS[window]
            queries = {
                "summary": lambda: metrics.get_summary(s, actor=actor, window_hours=hours),
                "timeseries": lambda: metrics.get_timeseries(s, actor=actor, window_hours=hours),
                "by agent type": lambda: metrics.get_breakdown(s, actor=actor, window_hours=hours, by="agent_type"),
                "by shop": lambda: metrics.get_breakdown(s, actor=actor, window_hours=hours, by="shop"),
                "workers": lambda: health.list_workers(s, actor=actor),
                "probes": lambda: health.probe_history(s, actor=actor, window_hours=min(hours, 24)),
            }
            for name, fn in queries.items():
                fn()  # warm
                rows.append((f"{name} ({window}) p95", f"{pct(_time(fn, args.reps), 0.95):.1f} ms", "< 50 ms", "–"))
        ours = _time(lambda: metrics.get_summary(s, actor=actor, window_hours=720), 3)
    page_rows = _page_rows(args.reps)  # before the naive way fills this process with a million rows
    naive = _time(lambda: _naive_summary(engine), 3)
    rows.append(("summary over 30 d, median", f"{pct(ours, 0.5):.1f} ms", "–",
                 f"pd.read_sql + groupby: {pct(naive, 0.5):,.0f} ms ({pct(naive, 0.5) / pct(ours, 0.5):,.0f}× slower)"))
    rows += page_rows
    return table("Agent Health (PostgreSQL, 1,000,000 conversations)", rows)


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
