"""Plotly figures for the health page, built from already-aggregated rows."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import plotly.graph_objects as go

STATUS_COLOURS = {"completed": "#16a34a", "failed": "#dc2626", "opted_out": "#a3a3a3", "still open": "#93c5fd"}


def volume_by_status(series: list[dict[str, Any]]) -> go.Figure:
    """Stacked bars: how the conversations created in each period ended."""
    periods = _periods(series)
    open_ = [max(r["created"] - r["completed"] - r["failed"] - r["opted_out"], 0) for r in series]
    columns = {"completed": [r["completed"] for r in series], "failed": [r["failed"] for r in series],
               "opted_out": [r["opted_out"] for r in series], "still open": open_}
    # Traces built by hand, not with plotly.express: px groups a long frame per colour and takes ~50 ms a figure,
    # a cost paid again on every window click.
    fig = go.Figure([go.Bar(x=periods, y=ys, name=status, marker_color=STATUS_COLOURS[status])
                     for status, ys in columns.items()], layout={"barmode": "stack", "yaxis_title": "conversations"})
    return _time_axis(_tidy(fig, "Conversations by status"), series)


def p95_over_time(series: list[dict[str, Any]], threshold_ms: float) -> go.Figure:
    """p95 response time per period with the success-criterion line."""
    ys = [r["p95_response_ms"] for r in series]
    fig = _line(series, ys, "p95_response_ms", threshold_ms, f"goal {threshold_ms:,.0f} ms")
    return _time_axis(_tidy(fig, "p95 response time (ms)"), series)


def error_rate_over_time(series: list[dict[str, Any]], threshold_pct: float) -> go.Figure:
    """Error rate per period (failed ÷ (completed + failed)) with the threshold."""
    ys = [None if r["error_rate"] is None else float(r["error_rate"]) * 100 for r in series]
    fig = _line(series, ys, "error rate %", threshold_pct, f"goal {threshold_pct:g} %")
    return _time_axis(_tidy(fig, "Error rate (%)"), series)


def _periods(series: list[dict[str, Any]]) -> list[datetime]:
    """Period starts as naive UTC (what plotly.express drew before), so the axis reads in UTC."""
    return [r["period"].astimezone(timezone.utc).replace(tzinfo=None) for r in series]


def _line(series: list[dict[str, Any]], ys: list[Any], y_title: str, threshold: float, label: str) -> go.Figure:
    """Values per period as a line with markers, and a dashed red line at THRESHOLD."""
    # The threshold as a plain shape and label (fig.add_hline costs ~20 ms a figure).
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": threshold, "y1": threshold,
             "line": {"dash": "dash", "color": "#dc2626"}}
    note = {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": threshold, "yanchor": "bottom",
            "text": label, "showarrow": False}
    return go.Figure(go.Scatter(x=_periods(series), y=ys, mode="lines+markers", name=y_title,
                                line={"color": "#636efa"}),
                     layout={"yaxis_title": y_title, "showlegend": False, "shapes": [shape], "annotations": [note]})


PROBE_COLOURS = ("#16a34a", "#2563eb", "#9333ea", "#ea580c", "#0891b2", "#65a30d")


def probe_latency(probes: list[dict[str, Any]], window: tuple[datetime, datetime]) -> go.Figure:
    """Latency of every probed endpoint over the whole WINDOW in one chart: a line per URL through its probes, its
    failed probes marked with a red cross on the zero line (one chart, not one per URL: each chart costs the
    browser tens of milliseconds to draw on every click)."""
    fig = go.Figure()
    for i, probe in enumerate(probes):
        url = probe["url"]
        df = pd.DataFrame(probe["points"], columns=["checked_at", "latency_ms", "ok"])
        df["checked_at"] = pd.to_datetime(df["checked_at"], utc=True).dt.tz_localize(None)
        colour = PROBE_COLOURS[i % len(PROBE_COLOURS)]
        fig.add_trace(go.Scatter(x=df["checked_at"], y=df["latency_ms"], mode="lines+markers", name=url,
                                 legendgroup=url, line={"color": colour}, marker={"size": 5}))
        down = df[~df["ok"].astype(bool)]
        fig.add_trace(go.Scatter(x=down["checked_at"], y=[0] * len(down), mode="markers", legendgroup=url,
                                 name=f"{url} down", showlegend=len(down) > 0,
                                 marker={"color": "#dc2626", "size": 9, "symbol": "x"}))
    fig.update_yaxes(title="ms", rangemode="tozero")
    # The axis spans the window, so one point (a new prober, or hourly averages) sits at its time, not alone
    # on a few milliseconds of axis; Plotly then picks minute, hour or day ticks as the window needs.
    fig.update_xaxes(range=[t.replace(tzinfo=None) for t in window])
    return _tidy(fig, "Health endpoint latency", height=280)


def _time_axis(fig: go.Figure, series: list[dict[str, Any]]) -> go.Figure:
    """Ticks at whole periods (every 10 minutes, 3 hours, or a day or a week), labelled with the time and, below it,
    the date; the axis spans the window's periods and no more (markers made Plotly pad a 30-day axis by days)."""
    periods = _periods(series)
    step = periods[1] - periods[0] if len(periods) > 1 else timedelta(hours=1)
    if periods:
        fig.update_xaxes(range=[periods[0] - step / 2, periods[-1] + step / 2])
    if step >= timedelta(days=1):
        daily_axis(fig, days=len(periods))
    elif step >= timedelta(hours=1):
        fig.update_xaxes(dtick=3 * 3_600_000, tickformat="%H:%M\n%b %d")
    else:
        fig.update_xaxes(dtick=10 * 60_000, tickformat="%H:%M")
    return fig


def daily_axis(fig: go.Figure, days: int = 1) -> go.Figure:
    """A time axis of whole days (plotly otherwise labels a single day in milliseconds around its midnight); over
    more than ten days a tick a week, as a label a day ran together ("No No No") in a third of the page."""
    fig.update_xaxes(dtick=86_400_000 * (1 if days <= 10 else 7), tickformat="%b %d", title=None)
    return fig


def _tidy(fig: go.Figure, title: str, height: int = 300) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.15, "yanchor": "top", "title": {"text": ""}},
                      xaxis_title=None)
    return fig
