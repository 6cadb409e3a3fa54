"""AppTest through the real entrypoint, on a seeded database with the demo sign-ins."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core.auth import system_actor
from core.seed.runner import demo_password, seed_demo_users
from tests.support.data import seed_minimal

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture
def console_db(engine: Engine) -> Engine:
    from dashboard import data

    data.health_figures.clear()  # st.cache_data is per process: no figures from another test's database
    seed_minimal(engine)
    seed_demo_users(actor=system_actor("test"), engine=engine)
    return engine


def open_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    return at


def sign_in(at: AppTest, username: str, password: str | None = None) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password if password is not None else demo_password(username))
    at.button[0].click()
    at.run()
    return at


def reloaded_with_cookie_of(at: AppTest, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """A reload of AT's page: a new Streamlit session whose request carried AT's session cookie. Streamlit keeps the
    cookies a session was opened with for as long as it lives, whatever the page writes later."""
    from dashboard import cookies

    sent = at.session_state["agentops_session"]
    monkeypatch.setattr(cookies, "read_token", lambda: sent)
    monkeypatch.setattr(cookies, "_raw_cookie", lambda: "the ciphertext the browser sent")
    return open_app()


def shown(elements) -> list[str]:  # noqa: ANN001 - AppTest's element lists
    """What markdown elements (st.success, st.error…) show a person: the text with markdown's backslash escapes
    removed (page messages escape what people typed, see dashboard.components.plain_md)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]


def body_text(at: AppTest) -> str:
    """Everything the page shows as text, for assertions a person would make."""
    parts = [e.value for e in (*at.markdown, *at.text, *at.caption, *at.title, *at.subheader, *at.error, *at.info,
                               *at.warning, *at.success)]
    parts += [m.label + " " + str(m.value) for m in at.metric]
    return "\n".join(str(p) for p in parts)


def in_form(at: AppTest, form: str, label: str):  # noqa: ANN201 - a text input, select box, radio… of AppTest
    """The widget labelled LABEL in form FORM (forms are named FORM_<generation>, see components.form_key)."""
    widgets = (*at.text_input, *at.selectbox, *at.radio, *at.multiselect, *at.number_input)
    return next(w for w in widgets if _named(w.form_id, form) and w.label == label)


def submit(at: AppTest, form: str) -> AppTest:
    """Click the submit button of form FORM and run the app."""
    next(b for b in at.button if _named(b.form_id, form)).click()
    return at.run()


def _named(form_id: str | None, form: str) -> bool:
    return form_id == form or (form_id or "").startswith(f"{form}_")
