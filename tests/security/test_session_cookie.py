"""9.12: the session cookie as the browser stores it: SameSite=Strict always, Secure outside development.

HttpOnly cannot be set: the cookie is written by JavaScript (a one-way script in dashboard/cookies.py) and
document.cookie cannot create HttpOnly cookies; Streamlit offers no server-side Set-Cookie (see the README)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from core.auth import system_actor
from core.db import make_engine
from core.services import users
from core.uow import UnitOfWork
from tests.support.net import free_port
from tests.support.workers import wait_for

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
PASSWORD = "a long enough password"


@pytest.fixture(params=["development", "staging"])
def console(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The console on a SQLite copy, in the given environment, with one real (non-demo) engineer."""
    db = tmp_path / "console.db"
    shutil.copy(sqlite_template, db)
    engine = make_engine(f"sqlite:///{db}")
    users.add_user(actor=system_actor("test"), username="rita", password=PASSWORD, role="engineer",
                   uow=UnitOfWork(engine))
    engine.dispose()
    port, env = free_port(), {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "BCRYPT_ROUNDS": "4",
                              "ENVIRONMENT": request.param, "COOKIE_KEY": "a-real-cookie-secret-for-this-test"}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                               "--server.headless", "true", "--server.port", str(port), "--server.address",
                               "127.0.0.1", "--browser.gatherUsageStats", "false"], env=env, cwd=ROOT,
                              stdout=open(tmp_path / "streamlit.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(url), timeout=60, what="the console to start")
    yield url, request.param
    server.terminate()
    server.wait(timeout=20)


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200
    except OSError:
        time.sleep(0.2)
        return False


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        yield browser.new_page()
        browser.close()


def test_the_session_cookie_flags(console: tuple[str, str], page: Page) -> None:
    url, environment = console
    page.goto(url)
    page.get_by_label("User name").fill("rita")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Agent health")).to_be_visible(timeout=30_000)

    def session_cookie() -> dict | None:
        return next((c for c in page.context.cookies() if c["name"] == "agentops_session"), None)

    wait_for(lambda: session_cookie() is not None, timeout=30, what="the session cookie")
    cookie = session_cookie()
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is (environment != "development")
    assert cookie["httpOnly"] is False  # written from JavaScript: see the module docstring and the README
