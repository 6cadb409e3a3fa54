"""Agent health: the checklist's success criteria, trends, breakdowns, workers and endpoints."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.config import get_settings, mask_url
from core.queries.metrics import WINDOWS, describe_window
from core.queries.rollup_reads import HOURLY_ONLY_HOURS
from dashboard import charts, components, data, replica_widgets

PROBE_GAP = timedelta(minutes=10)  # probes starting later than this into the window did not cover all of it
actor = components.page_guard(Permission.VIEW_HEALTH, "Agent health")
settings = get_settings()
st.title("Agent health")
window = st.segmented_control("Window", list(WINDOWS), default="24h", key="health_window") or "24h"
scope = "all shops" if actor.shop_ids is None else "shops " + ", ".join(map(str, sorted(actor.shop_ids)))


def load() -> dict | None:
    figures = components.with_database(lambda: data.health_figures(*data.scope_args(actor), WINDOWS[window]),
                                       fallback=st.session_state.get(f"health_last_good_{window}"))
    st.session_state[f"health_last_good_{window}"] = figures
    return figures


@components.live_fragment(run_every=settings.health_refresh_seconds)
def live_panels() -> None:
    figures = load()
    if figures is None:  # the database is down and nothing was read before: the banner says so
        return
    replica_widgets.fallback_banner(figures.get("route"))
    summary = figures["summary"]
    st.caption(f"Conversations created in the last {window}: {describe_window(summary.since, summary.until)}, "
               f"{scope}. Live panels refresh every {settings.health_refresh_seconds} s.")
    cols = st.columns(3) + st.columns(3)
    for col, criterion in zip(cols, figures["criteria"]):
        components.criterion_tile(col, criterion)
    with cols[5].container(border=True):
        st.metric("Conversations", f"{summary.conversations:,}", help="Created in the window; their statuses below.")
        # Cents hide a small spend ($0.0044 showed as $0.00); the sums are of the finished conversations (the rollups
        # add a conversation's tokens and cost when it ends), and the caption says so.
        cost = f"${summary.cost_usd:,.2f}" if summary.cost_usd >= 1 else f"${summary.cost_usd:.4f}"
        st.caption(f"{summary.tokens:,} tokens · {cost} (finished conversations)")
    st.text("By status: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in summary.by_status.items()))
    if WINDOWS[window] > HOURLY_ONLY_HOURS:  # daily bars: the window's first and last days are partial (dips)
        st.caption(f"Bars are UTC days; the first ({summary.since:%b %d} from {summary.since:%H:%M}) and the last "
                   "(until now) are partial days.")
    left, right = st.columns(2)
    left.plotly_chart(charts.volume_by_status(figures["series"]), width="stretch")
    right.plotly_chart(charts.p95_over_time(figures["series"], settings.sc_response_p95_ms), width="stretch")
    left.plotly_chart(charts.error_rate_over_time(figures["series"], settings.sc_error_rate * 100),
                      width="stretch")
    with right:
        tab_type, tab_shop = st.tabs(["By agent type", "By shop"])
        tab_type.dataframe(_breakdown(figures["by_type"]), hide_index=True, width="stretch")
        tab_shop.dataframe(_breakdown(figures["by_shop"]), hide_index=True, width="stretch")
    render_workers(figures["workers"])
    render_probes(figures["probes"])
    replica_widgets.replica_panel(components.with_database(lambda: data.replica_status(*data.scope_args(actor)),
                                                           fallback=None))
    read_at = datetime.fromtimestamp(figures["read_at"]).strftime("%H:%M:%S")
    st.caption(f"Last updated {read_at} · page queries took {figures['read_ms']:.0f} ms")


def _breakdown(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["name", "created", "completed", "failed", "error_rate", "p95_response_ms"])
    df["error %"] = (df["error_rate"].astype(float) * 100).round(2)
    df["p95 ms"] = df["p95_response_ms"].astype(float).round(0)
    return df[["name", "created", "completed", "failed", "error %", "p95 ms"]]


def render_workers(workers: list[dict]) -> None:
    st.subheader("Workers")
    if not workers:
        st.info("No worker has reported in the last day. Start one with `python -m core worker`.")
        return
    df = pd.DataFrame(workers)[["worker", "alive", "env_enabled", "age_s", "in_flight", "processed",
                                "settings_version", "breaker", "rss_mb", "rss_growth_mb", "cpu_percent"]]
    df["age_s"] = df["age_s"].round(1)
    # A worker's own AGENT_SYSTEM_ENABLED=false starts nothing whatever the stored switch says.
    st.dataframe(df.rename(columns={"age_s": "last heartbeat (s ago)", "settings_version": "settings version seen",
                                    "env_enabled": "AGENT_SYSTEM_ENABLED"}), hide_index=True, width="stretch")


def render_probes(probes: list[dict]) -> None:
    st.subheader("Health endpoints")
    if not probes:
        st.info(components.plain_md(f"No probe results in the last {window}. python -m core probe --every 30 checks "
                                    + ", ".join(map(mask_url, settings.probe_urls()))))
        return
    for p in probes:
        state = "up" if p["ok"] else f"DOWN ({p['error'] or p['status_code']})"
        if p["until"] - p["last_checked"] > PROBE_GAP:  # an endpoint no longer probed is not down "now"
            state = f"not probed since {p['last_checked']:%H:%M} UTC (then {state.split(' (')[0]})"
        # The uptime is of the probes there are: a prober started an hour ago gives an hour, not the window.
        n, first = p["probes"], p["first_checked"]
        earlier = f" (none earlier in the last {window})" if first - p["since"] > PROBE_GAP else ""
        st.text(f"{p['url']}: {state} · uptime {p['uptime_percent']:.1f} % of {n:,} "
                f"probe{'s' if n != 1 else ''}, "
                f"{describe_window(first, p['last_checked'])}{earlier}")
    st.plotly_chart(charts.probe_latency(probes, (probes[0]["since"], probes[0]["until"])), width="stretch")


live_panels()
