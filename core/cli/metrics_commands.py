"""`metrics`: the Agent Health page's figures on the command line, from the same query functions."""
from __future__ import annotations

import argparse

from core.auth import system_actor
from core.cli.common import emit, load_actor
from core.db import get_engine, read_session
from core.queries import health, metrics


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("metrics", help="agent health over a window: volume, status, error rate, p95, criteria")
    m.add_argument("--window", default="24h",
                   help="1h | 24h | 7d | 30d: the last 60 minutes, 24 hours… up to now, to the minute")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=show_metrics)


def show_metrics(args: argparse.Namespace) -> int:
    hours = metrics.parse_window(args.window)
    actor = load_actor(args.actor, source="cli") if args.actor else system_actor("cli")
    with read_session(get_engine(read=True)) as s:
        summary = metrics.get_summary(s, actor=actor, window_hours=hours)
        workers = health.list_workers(s, actor=actor)
        criteria = health.evaluate_criteria(s, actor=actor, summary=summary, workers=workers)
    data = {**summary.as_dict(), "window": args.window, "criteria": {c.key: c.as_dict() for c in criteria}}
    emit(data, as_json=args.json, text=_text(args.window, summary, criteria))
    return 0


def _text(window: str, summary: metrics.Summary, criteria: list[health.Criterion]) -> str:
    rate = "–" if summary.error_rate is None else f"{summary.error_rate:.3%}"
    p95 = "–" if summary.p95_response_ms is None else f"{summary.p95_response_ms:,.0f} ms"
    lines = [f"conversations created in the last {window} ({metrics.describe_window(summary.since, summary.until)}): "
             f"{summary.conversations:,}",
             "by status: " + ", ".join(f"{k} {v:,}" for k, v in summary.by_status.items()),
             f"error rate: {rate}   p95 response: {p95}   tokens: {summary.tokens:,}   cost: ${summary.cost_usd:,.4f}",
             "success criteria:"]
    for c in criteria:
        value = "–" if c.value is None else f"{c.value:,.2f} {c.unit}"
        lines.append(f"  {c.state.upper():8} {c.label:28} {value:>14}  (goal < {c.threshold:,g} {c.unit})")
    return "\n".join(lines)
