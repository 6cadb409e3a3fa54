"""The health page's time axes: a tick every day over a month ran its labels together ("No No No"), and the
markers made Plotly pad a 30-day axis to 33 days (found by a Chromium walkthrough)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dashboard import charts


def _series(start: datetime, step: timedelta, n: int) -> list[dict]:
    return [{"period": start + i * step, "created": 3, "completed": 2, "failed": 1, "opted_out": 0,
             "error_rate": 1 / 3, "p95_response_ms": 900.0} for i in range(n)]


def test_a_month_of_days_has_a_tick_a_week_and_an_axis_of_the_month() -> None:
    start = datetime(2026, 11, 7, tzinfo=timezone.utc)
    series = _series(start, timedelta(days=1), 31)
    for fig in (charts.volume_by_status(series), charts.p95_over_time(series, 1500),
                charts.error_rate_over_time(series, 5)):
        axis = fig.layout.xaxis
        assert axis.dtick == 7 * 86_400_000 and axis.tickformat == "%b %d"
        low, high = (datetime.fromisoformat(str(x)) for x in axis.range)
        assert (low, high) == (datetime(2026, 11, 6, 12), datetime(2026, 12, 7, 12))


def test_a_week_of_days_keeps_a_tick_a_day_and_a_day_of_hours_a_tick_every_three_hours() -> None:
    start = datetime(2026, 11, 7, tzinfo=timezone.utc)
    assert charts.p95_over_time(_series(start, timedelta(days=1), 7), 1500).layout.xaxis.dtick == 86_400_000
    hours = charts.volume_by_status(_series(start, timedelta(hours=1), 24)).layout.xaxis
    assert hours.dtick == 3 * 3_600_000
    assert [datetime.fromisoformat(str(x)) for x in hours.range] == [datetime(2026, 11, 6, 23, 30),
                                                                      datetime(2026, 11, 7, 23, 30)]
