"""AppTest through the real entrypoint, on a seeded database with the demo sign-ins."""
from __future__ import annotations

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


def body_text(at: AppTest) -> str:
    """Everything the page shows as text, for assertions a person would make."""
    parts = [e.value for e in (*at.markdown, *at.text, *at.caption, *at.title, *at.subheader, *at.error, *at.info,
                               *at.warning, *at.success)]
    parts += [m.label + " " + str(m.value) for m in at.metric]
    return "\n".join(str(p) for p in parts)
