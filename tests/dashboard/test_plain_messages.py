"""An error that echoes what a person typed shows it literally: act() escapes every markdown character."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

HOSTILE = "No rule named '[click](javascript:alert(1)) **bold** :red[red] $x$ http://x www.x <img src=x onerror=alert(1)>'."


def _page() -> None:
    from core.errors import UserInputError
    from dashboard.components import act

    def refuse() -> None:
        raise UserInputError("No rule named '[click](javascript:alert(1)) **bold** :red[red] $x$ http://x www.x "
                             "<img src=x onerror=alert(1)>'.")

    act(refuse)


def test_an_error_echoing_input_is_shown_as_literal_text() -> None:
    at = AppTest.from_function(_page).run()
    assert not at.exception
    shown = at.error[0].value
    assert shown == (r"No rule named '\[click\](javascript:alert(1)) \*\*bold\*\* :red\[red\] \$x\$ http\://x www\.x "
                     r"\<img src=x onerror=alert(1)\>'.")
    # Unescaping gives back exactly what was typed: nothing was dropped, only made inert.
    assert shown.replace("\\", "") == HOSTILE
