"""`metrics`: the Agent Health page's figures on the command line, from the same query functions."""
from __future__ import annotations

import argparse

from sqlalchemy.orm import Session

from core.auth import Actor, system_actor
from core.cli.common import emit, load_actor
from core.queries import health, metrics
from core.queries.replica import ReplicaStatus, get_replica_status
from core.read_routing import run_read


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("metrics", help="agent health over a window: volume, status, error rate, p95, criteria")
    m.add_argument("--window", default="24h",
                   help="1h | 24h | 7d | 30d: the last 60 minutes, 24 hours… up to now, to the minute")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=show_metrics)
    r = sub.add_parser("replica", help="the read replica (DATABASE_READ_URL): reachable?, lag in seconds and bytes; "
                                       "exit 1 when configured but unreachable")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=show_replica)


def show_metrics(args: argparse.Namespace) -> int:
    hours = metrics.parse_window(args.window)
    actor = load_actor(args.actor, source="cli") if args.actor else system_actor("cli")
    summary, criteria = run_read(lambda s: _figures(s, actor, hours))  # the read replica when it answers
    data = {**summary.as_dict(), "window": args.window, "criteria": {c.key: c.as_dict() for c in criteria}}
    emit(data, as_json=args.json, text=_text(args.window, summary, criteria))
    return 0


def _figures(s: Session, actor: Actor, hours: int) -> tuple[metrics.Summary, list[health.Criterion]]:
    summary = metrics.get_summary(s, actor=actor, window_hours=hours)
    workers = health.list_workers(s, actor=actor)
    return summary, health.evaluate_criteria(s, actor=actor, summary=summary, workers=workers)


def _text(window: str, summary: metrics.Summary, criteria: list[health.Criterion]) -> str:
    rate = "–" if summary.error_rate is None else f"{summary.error_rate:.3%}"
    p95 = "–" if summary.p95_response_ms is None else f"{summary.p95_response_ms:,.0f} ms"
    lines = [f"conversations created in the last {window} ({metrics.describe_window(summary.since, summary.until)}): "
             f"{summary.conversations:,}",
             "by status: " + ", ".join(f"{k} {v:,}" for k, v in summary.by_status.items()),
             f"error rate: {rate}   p95 response: {p95}   tokens: {summary.tokens:,}   cost: ${summary.cost_usd:,.4f}",
             "success criteria:"]
    for c in criteria:
        # Milliseconds to the unit: a p95 from histogram buckets is good to about 2.5 %, not to a hundredth.
        value = "–" if c.value is None else f"{c.value:,.{0 if c.unit == 'ms' else 2}f} {c.unit}"
        lines.append(f"  {c.state.upper():8} {c.label:28} {value:>14}  (goal < {c.threshold:,g} {c.unit})")
    return "\n".join(lines)


def show_replica(args: argparse.Namespace) -> int:
    actor = load_actor(args.actor, source="cli") if args.actor else system_actor("cli")
    status = get_replica_status(actor=actor)
    emit(status.as_dict(), as_json=args.json, text=_replica_text(status))
    return 1 if status.configured and not status.reachable else 0


def _replica_text(status: ReplicaStatus) -> str:
    if not status.configured:
        return "no read replica configured (DATABASE_READ_URL): every read goes to the primary"
    if not status.reachable:
        return f"replica {status.url}: UNREACHABLE\n{status.problem}"
    lines = [f"replica {status.url}: reachable, lag-tolerant reads go there",
             f"lag: {status.lag_seconds if status.lag_seconds is not None else '–'} s, "
             f"{status.lag_bytes if status.lag_bytes is not None else '–'} bytes of WAL behind"
             + (" (replay paused)" if status.replay_paused else "")]
    return "\n".join(lines + ([status.problem] if status.problem else []))
