"""Plotly figures for the health page, built from already-aggregated rows."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

STATUS_COLOURS = {"completed": "#16a34a", "failed": "#dc2626", "opted_out": "#a3a3a3", "still open": "#93c5fd"}


def volume_by_status(series: list[dict[str, Any]]) -> go.Figure:
    """Stacked bars: how the conversations created in each period ended."""
    df = pd.DataFrame(series, columns=["period", "completed", "failed", "opted_out", "created"])
    df["still open"] = (df["created"] - df["completed"] - df["failed"] - df["opted_out"]).clip(lower=0)
    long = df.melt(id_vars="period", value_vars=["completed", "failed", "opted_out", "still open"],
                   var_name="status", value_name="conversations")
    fig = px.bar(long, x="period", y="conversations", color="status", color_discrete_map=STATUS_COLOURS)
    return _time_axis(_tidy(fig, "Conversations by status"), series)


def p95_over_time(series: list[dict[str, Any]], threshold_ms: float) -> go.Figure:
    """p95 response time per period with the success-criterion line."""
    df = pd.DataFrame(series, columns=["period", "p95_response_ms"])
    fig = px.line(df, x="period", y="p95_response_ms", markers=True)
    fig.add_hline(y=threshold_ms, line_dash="dash", line_color="#dc2626", annotation_text=f"goal {threshold_ms:,.0f} ms")
    return _time_axis(_tidy(fig, "p95 response time (ms)"), series)


def error_rate_over_time(series: list[dict[str, Any]], threshold_pct: float) -> go.Figure:
    """Error rate per period (failed ÷ (completed + failed)) with the threshold."""
    df = pd.DataFrame(series, columns=["period", "error_rate"])
    df["error rate %"] = df["error_rate"].astype(float) * 100
    fig = px.line(df, x="period", y="error rate %", markers=True)
    fig.add_hline(y=threshold_pct, line_dash="dash", line_color="#dc2626", annotation_text=f"goal {threshold_pct:g} %")
    return _time_axis(_tidy(fig, "Error rate (%)"), series)


def probe_latency(points: list[dict[str, Any]], url: str, window: tuple[datetime, datetime]) -> go.Figure:
    """Latency of one probed endpoint over the whole WINDOW: a line through the probes, failed ones marked red."""
    df = pd.DataFrame(points, columns=["checked_at", "latency_ms", "ok"])
    df["checked_at"] = pd.to_datetime(df["checked_at"], utc=True).dt.tz_localize(None)
    fig = go.Figure(go.Scatter(x=df["checked_at"], y=df["latency_ms"], mode="lines+markers", name="latency",
                               line={"color": "#16a34a"}, marker={"size": 5}))
    down = df[~df["ok"].astype(bool)]
    fig.add_trace(go.Scatter(x=down["checked_at"], y=[0] * len(down), mode="markers", name="down",
                             marker={"color": "#dc2626", "size": 9, "symbol": "x"}))
    fig.update_yaxes(title="ms", rangemode="tozero")
    # The axis spans the window, so one point (a new prober, or hourly averages) sits at its time, not alone
    # on a few milliseconds of axis; Plotly then picks minute, hour or day ticks as the window needs.
    fig.update_xaxes(range=[t.replace(tzinfo=None) for t in window])
    return _tidy(fig, url, height=240)


def _time_axis(fig: go.Figure, series: list[dict[str, Any]]) -> go.Figure:
    """Ticks at whole periods (every 10 minutes, 3 hours or day), labelled with the time and, below it, the date."""
    periods = [row["period"] for row in series]
    step = periods[1] - periods[0] if len(periods) > 1 else timedelta(hours=1)
    if step >= timedelta(days=1):
        fig.update_xaxes(dtick=86_400_000, tickformat="%b %d")
    elif step >= timedelta(hours=1):
        fig.update_xaxes(dtick=3 * 3_600_000, tickformat="%H:%M\n%b %d")
    else:
        fig.update_xaxes(dtick=10 * 60_000, tickformat="%H:%M")
    return fig


def _tidy(fig: go.Figure, title: str, height: int = 300) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.15, "yanchor": "top", "title": {"text": ""}},
                      xaxis_title=None)
    return fig
