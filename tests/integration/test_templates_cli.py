"""The checklist's "test agent template loading"."""
from __future__ import annotations

import pytest

from core.cli import main
from core.templates import MissingVariable, render


def test_every_template_renders(capsys: pytest.CaptureFixture) -> None:
    assert main(["templates", "check"]) == 0
    out = capsys.readouterr().out
    for agent_type in ("rebooking", "no_show_fee", "birthday_wishes", "holiday_greetings", "review_request",
                       "retention", "upsell", "appointment_reminder", "custom"):
        assert f"ok    {agent_type}" in out


def test_missing_variable_is_named() -> None:
    with pytest.raises(MissingVariable, match="needs booking_link"):
        render("Hi {client_first_name}, book at {booking_link}", {"client_first_name": "Al"}, where="rebooking")
