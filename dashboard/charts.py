"""Plotly figures for the health page, built from already-aggregated rows."""
from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

STATUS_COLOURS = {"completed": "#16a34a", "failed": "#dc2626", "opted_out": "#a3a3a3", "created": "#2563eb"}


def volume_by_status(series: list[dict[str, Any]]) -> go.Figure:
    """Stacked bars: how the conversations created in each period ended."""
    df = pd.DataFrame(series, columns=["period", "completed", "failed", "opted_out", "created"])
    df["still open"] = (df["created"] - df["completed"] - df["failed"] - df["opted_out"]).clip(lower=0)
    long = df.melt(id_vars="period", value_vars=["completed", "failed", "opted_out", "still open"],
                   var_name="status", value_name="conversations")
    fig = px.bar(long, x="period", y="conversations", color="status", color_discrete_map=STATUS_COLOURS)
    return _tidy(fig, "Conversations by status")


def p95_over_time(series: list[dict[str, Any]], threshold_ms: float) -> go.Figure:
    """p95 response time per period with the success-criterion line."""
    df = pd.DataFrame(series, columns=["period", "p95_response_ms"])
    fig = px.line(df, x="period", y="p95_response_ms", markers=True)
    fig.add_hline(y=threshold_ms, line_dash="dash", line_color="#dc2626", annotation_text=f"goal {threshold_ms:,.0f} ms")
    return _tidy(fig, "p95 response time (ms)")


def error_rate_over_time(series: list[dict[str, Any]], threshold_pct: float) -> go.Figure:
    """Error rate per period (failed ÷ (completed + failed)) with the threshold."""
    df = pd.DataFrame(series, columns=["period", "error_rate"])
    df["error rate %"] = df["error_rate"].astype(float) * 100
    fig = px.line(df, x="period", y="error rate %", markers=True)
    fig.add_hline(y=threshold_pct, line_dash="dash", line_color="#dc2626", annotation_text=f"goal {threshold_pct:g} %")
    return _tidy(fig, "Error rate (%)")


def probe_latency(points: list[dict[str, Any]], url: str) -> go.Figure:
    """Latency of one probed endpoint over time."""
    df = pd.DataFrame(points, columns=["checked_at", "latency_ms", "ok"])
    fig = px.scatter(df, x="checked_at", y="latency_ms", color="ok",
                     color_discrete_map={True: "#16a34a", False: "#dc2626"})
    return _tidy(fig, url, height=220)


def _tidy(fig: go.Figure, title: str, height: int = 300) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.2}, xaxis_title=None)
    return fig
