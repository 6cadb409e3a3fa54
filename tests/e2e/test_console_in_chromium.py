"""The console in headless Chromium: sign in, see only your pages, switch the system off through the dialog."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import Engine

from core.auth import system_actor
from core.db import read_session
from core.queries.settings import get_activation_state
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
    seed_minimal(engine)
    seed_demo_users(actor=system_actor("test"), engine=engine)
    controls.set_activation(actor=system_actor("test"), mode="full", reason="e2e", uow=UnitOfWork(engine))
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "BCRYPT_ROUNDS": "4"}
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
    page.goto(url)
    page.get_by_label("User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(demo_password(username))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Agent health")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Last updated")).to_be_visible(timeout=30_000)  # the live panels have rendered


def test_engineer_switches_off_through_the_dialog(console: str, page: Page, engine: Engine) -> None:
    sign_in(page, console, "engineer")
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav).to_contain_text("Controls")
    for _ in range(3):  # a click that lands while a live panel reruns can be lost; a person clicks again
        page.get_by_role("link", name=re.compile("Controls")).click()
        try:
            expect(page.get_by_role("heading", name="Controls")).to_be_visible(timeout=10_000)
            break
        except AssertionError:
            continue
    expect(page.get_by_text("RUNNING")).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Turn off…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("conversations in flight will finish")
    dialog.get_by_label("Reason (required)").fill("e2e drill")
    dialog.get_by_label("Reason (required)").press("Enter")
    dialog.get_by_role("button", name="Turn off now").click()
    expect(page.get_by_text("STOPPED")).to_be_visible(timeout=20_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    with read_session(engine) as s:
        state = get_activation_state(s)
    assert (state.mode, state.changed_by, state.reason) == ("off", "engineer", "e2e drill")


def test_support_finds_no_control_they_may_not_use(console: str, page: Page) -> None:
    sign_in(page, console, "support")
    nav = page.locator('[data-testid="stSidebarNav"]')
    if nav.count():
        expect(nav).not_to_contain_text("Controls")
        expect(nav).not_to_contain_text("Rollbacks")
        expect(nav).not_to_contain_text("Audit log")
    deadline = time.time() + 20  # the session cookie is written once the signed-in page has rendered
    while not any(c["name"] == "agentops_session" for c in page.context.cookies()) and time.time() < deadline:
        page.wait_for_timeout(200)
    page.goto(console + "/controls")  # a reload: a new Streamlit session, resumed from the cookie
    expect(page.get_by_text("may not open Controls")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Turn off…")).to_have_count(0)
