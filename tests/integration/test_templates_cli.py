"""The checklist's "test agent template loading"."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine

from core.cli import main
from core.templates import MissingVariable, render

TYPES = ("rebooking", "no_show_fee", "birthday_wishes", "holiday_greetings", "review_request", "retention", "upsell",
         "appointment_reminder", "custom")


def test_every_template_renders_from_the_database_db_setup_fills(engine: Engine, capsys: pytest.CaptureFixture
                                                                 ) -> None:
    """The worker renders the stored templates; `templates check` and the checklist read the shipped file alone,
    and said ok of a database that held none (a CLI review). `db setup` now installs them."""
    assert main(["templates", "check"]) == 1
    out = capsys.readouterr().out
    assert "error: stored rebooking: no template in the database (`python -m core db setup` installs them)" in out
    assert "PASS" not in _check_item(capsys)
    assert main(["db", "setup"]) == 0
    assert main(["templates", "check"]) == 0
    out = capsys.readouterr().out
    for agent_type in TYPES:
        assert f"ok    {agent_type}" in out
    assert "NOT STORED" not in out
    assert "PASS     activation.templates         all 9 stored templates render" in _check_item(capsys)


def _check_item(capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    main(["check", "--item", "activation.templates"])
    return capsys.readouterr().out


def test_missing_variable_is_named() -> None:
    with pytest.raises(MissingVariable, match="needs booking_link"):
        render("Hi {client_first_name}, book at {booking_link}", {"client_first_name": "Al"}, where="rebooking")
