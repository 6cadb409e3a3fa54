"""What a client reads: counts with their unit in the right number, appointment times on the shop's clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from core.templates import load_templates, render
from core.worker.context import build_context

NOW = datetime(2026, 12, 6, 18, 0, tzinfo=timezone.utc)


def _row(**changes: object) -> SimpleNamespace:
    row = dict(first_name="Devon", client_created_at=NOW - timedelta(days=400), shop_name="Crown Cuts",
               shop_timezone="America/New_York", barber_name="Andre", service="taper", starts_at=None, config={})
    return SimpleNamespace(**{**row, **changes})


def _message(agent_type: str, row: SimpleNamespace) -> str:
    return render(load_templates()[agent_type].initial_message, build_context(row, NOW))


def test_one_week_or_month_since_the_last_visit_reads_singular() -> None:
    assert "it's been 1 week since your last cut at Crown Cuts" in _message(
        "rebooking", _row(starts_at=NOW - timedelta(days=9)))
    assert "It's been 1 month since your last visit" in _message("retention", _row(starts_at=NOW - timedelta(days=40)))


def test_several_weeks_or_months_read_plural() -> None:
    assert "it's been 5 weeks since" in _message("rebooking", _row(starts_at=NOW - timedelta(days=36)))
    assert "It's been 4 months since" in _message("retention", _row(starts_at=NOW - timedelta(days=125)))


def test_the_appointment_is_given_on_the_shops_clock() -> None:
    row = _row(starts_at=datetime(2026, 12, 8, 3, 30, tzinfo=timezone.utc))  # 10:30 PM the evening before in New York
    context = build_context(row, NOW)
    assert (context["appointment_date"], context["appointment_time"]) == ("Monday, Dec 07", "10:30 PM")
    assert "Monday, Dec 07 at 10:30 PM" in _message("appointment_reminder", row)


def test_a_shop_with_an_unknown_time_zone_gets_utc_rather_than_no_message() -> None:
    row = _row(shop_timezone="Mars/Olympus", starts_at=datetime(2026, 12, 8, 15, 0, tzinfo=timezone.utc))
    context = build_context(row, NOW)
    assert (context["appointment_date"], context["appointment_time"]) == ("Tuesday, Dec 08", "3:00 PM")


def test_a_shops_link_is_its_name_in_plain_words() -> None:
    assert build_context(_row(shop_name="Uptown & Co."), NOW)["booking_link"] == "https://book.bookedbarber.com/uptown-co"


def test_a_holiday_greeting_without_a_named_holiday_reads_naturally() -> None:
    assert _message("holiday_greetings", _row()).startswith("Happy holidays, Devon! Crown Cuts holiday hours:")


def test_counts_read_singular_or_plural() -> None:
    from core.text import counted

    assert [counted(n, "blocking item") for n in (0, 1, 2, 1500)] == [
        "0 blocking items", "1 blocking item", "2 blocking items", "1,500 blocking items"]
