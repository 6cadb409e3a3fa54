"""Issue 9.4: a live panel's own reruns (st.fragment runs skip the app script) re-check the server-side session.
After `users disable`, or a role change, an open tab's next panel refresh shows no data and the sign-in instead.

Proof that the check is what protects: with `live_fragment` replaced by bare `st.fragment` these tests fail (the
panels keep refreshing data; see the commit that added this file)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from core.services import users
from core.uow import UnitOfWork
from tests.e2e.conftest import console, open_page, page, sign_in  # noqa: F401 - fixtures
from tests.support.data import ROLE_ACTORS


@pytest.fixture
def quick_panels(monkeypatch: pytest.MonkeyPatch) -> int:
    """Agent health's panels refresh every 3 s in the console the `console` fixture starts after this one."""
    monkeypatch.setenv("HEALTH_REFRESH_SECONDS", "3")
    return 3


def signed_out(tab: Page, within_ms: int = 30_000) -> None:
    """The sign-in form, and nothing of the page that was open."""
    expect(tab.get_by_role("button", name="Sign in")).to_be_visible(timeout=within_ms)
    expect(tab.get_by_role("button", name="Sign out")).to_have_count(0)


def test_a_disabled_users_open_health_page_stops_at_the_next_refresh(
        quick_panels: int, console: str, page: Page, engine: Engine) -> None:  # noqa: F811 - the fixtures
    sign_in(page, console, "engineer")
    # the health page's own figure (the menu has a "Conversations" page too)
    expect(page.get_by_test_id("stMain").get_by_text("Conversations", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"Live panels refresh every {quick_panels} s.", exact=False)).to_be_visible()
    users.set_disabled(actor=ROLE_ACTORS["admin"], username="engineer", disabled=True, uow=UnitOfWork(engine))
    # HEALTH_REFRESH_SECONDS: the next refresh, well before the default 15 s; nothing else reruns the page
    signed_out(page, within_ms=10_000)
    expect(page.get_by_text("Last updated")).to_have_count(0)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)


def test_a_demoted_users_open_rollbacks_page_stops_at_the_next_refresh(
        console: str, page: Page, engine: Engine) -> None:  # noqa: F811 - the fixtures
    sign_in(page, console, "engineer")
    open_page(page, console, "rollbacks", "Rollbacks")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    users.set_role(actor=ROLE_ACTORS["admin"], username="engineer", role="support", shops=[1],
                   uow=UnitOfWork(engine))
    signed_out(page)  # the runs panel refreshes every 2 s
    expect(page.get_by_role("heading", name="Rollbacks")).to_have_count(0)
