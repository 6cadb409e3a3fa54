"""The console in headless Chromium: a real `streamlit run` on the test's database, a browser, helpers a person's
steps are written with."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright
from sqlalchemy import Engine

from core.auth import system_actor
from core.seed.runner import demo_password, seed_demo_users
from core.services import controls
from core.uow import UnitOfWork
from tests.support.data import seed_minimal
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def console(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[str]:
    """The console on a seeded database with the demo sign-ins, the system on, a deploy hook that succeeds."""
    seed_minimal(engine)
    seed_demo_users(actor=system_actor("test"), engine=engine)
    controls.set_activation(actor=system_actor("test"), mode="full", reason="e2e", uow=UnitOfWork(engine))
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "BCRYPT_ROUNDS": "4", "DEPLOY_HOOK_COMMAND": "true",
           "BACKUP_DIR": str(tmp_path / "backups")}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                               "--server.headless", "true", "--server.port", str(port), "--server.address",
                               "127.0.0.1", "--browser.gatherUsageStats", "false"], env=env, cwd=ROOT,
                              stdout=open(tmp_path / "streamlit.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def sign_in(page: Page, url: str, username: str) -> None:
    """Sign in on the home page and wait until its live panels have rendered and the cookie is kept."""
    page.goto(url)
    page.get_by_label("User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(demo_password(username))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Agent health")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Last updated")).to_be_visible(timeout=30_000)
    deadline = time.time() + 20  # the session cookie is written once the signed-in page has rendered
    while not any(c["name"] == "agentops_session" for c in page.context.cookies()) and time.time() < deadline:
        page.wait_for_timeout(200)


def open_page(page: Page, url: str, path: str, heading: str) -> None:
    """Open a page by its URL (a new Streamlit session, resumed from the cookie) and wait until it has settled."""
    page.goto(f"{url}/{path}")
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30_000)
    settle(page)


def settle(page: Page, quiet_seconds: float = 1.0) -> None:
    """Wait until Streamlit has finished running (a rerun an action asked for included): the app says it is not
    running, and keeps saying so for QUIET_SECONDS."""
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    deadline, quiet_since = time.time() + 30, None
    while time.time() < deadline:
        if idle.count() == 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since >= quiet_seconds:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the console kept running for 30 s")


def stays_idle(page: Page, seconds: float) -> None:
    """The console runs nothing for SECONDS: no live panel is left asking the server over and over."""
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert idle.count() == 1, "the page ran again while nothing on it was changing"
        page.wait_for_timeout(50)


def no_error_box(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def choose(page: Page, form: Locator, label: str, option: str | None = None) -> None:
    """Open the select box LABEL in FORM and pick OPTION (the first one when None), as a person does: the box is
    scrolled into view and left to settle first (a click that lands while the page is still scrolling to it opens
    nothing, in a browser as in Playwright)."""
    box = form.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True))
    box.scroll_into_view_if_needed()
    settle(page, quiet_seconds=0.5)
    box.click()
    expect(page.get_by_role("option").first).to_be_visible(timeout=10_000)
    names = page.get_by_role("option").all_inner_texts()
    assert option is None or option in names, f"{option!r} is not among the choices {names}"
    (page.get_by_role("option", name=option, exact=True) if option else page.get_by_role("option").first).click()
