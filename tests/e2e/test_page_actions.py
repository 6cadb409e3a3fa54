"""Page actions as a person meets them: type the reason, click once; a form keeps its values after an error.

`force=True` clicks where the button is even while it looks disabled: a person's click lands there too, and
before the fix that first click only committed the text box (the button was still disabled on the server).
"""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, func, select

from core.db import read_session
from core.models import AgentInstance, RollbackRun
from core.queries.settings import get_activation_state
from tests.e2e.conftest import choose, no_error_box, open_page, settle, sign_in, stays_idle
from tests.support.workers import wait_for


def a_form(page: Page, button: str):  # noqa: ANN201 - a Playwright Locator
    """The form whose submit button says BUTTON."""
    return page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name=button))


def runs(engine: Engine) -> list[tuple[str, str]]:
    with read_session(engine) as s:
        return [(r.kind, r.state) for r in s.scalars(select(RollbackRun).order_by(RollbackRun.id))]


@pytest.fixture
def backend() -> str:
    """What is tested here happens in the browser and the page script, the same whatever the database."""
    return "sqlite"


def test_engineer_acts_on_the_first_click(console: str, page: Page, engine: Engine) -> None:
    sign_in(page, console, "engineer")
    controls_on_the_first_click(page, console, engine)
    open_page(page, console, "rollbacks", "Rollbacks")
    page.get_by_label("Reason").first.fill("error rate over 5 %")
    page.get_by_role("button", name="Start immediate rollback").click(force=True)
    wait_for(lambda: [kind for kind, _ in runs(engine)] == ["immediate"], timeout=20, what="the immediate rollback run")
    settle(page)
    page.get_by_role("tab", name="Full (< 15 min)").click()
    page.get_by_role("tabpanel").get_by_label("Reason").fill("release r42 breaks rebooking")
    page.get_by_role("button", name="Call the deploy hook").click(force=True)
    wait_for(lambda: ("full", "done") in runs(engine), timeout=20, what="the full rollback run")
    settle(page)
    page.get_by_role("tab", name="Database").click()
    panel = page.get_by_role("tabpanel")
    panel.get_by_label("Type the environment name").fill("development")
    panel.get_by_label("Reason").fill("drill")
    page.get_by_role("button", name="Request database rollback").click(force=True)
    wait_for(lambda: ("database", "approved") in runs(engine), timeout=20, what="the database rollback request")
    expect(page.get_by_text("approved").first).to_be_visible(timeout=20_000)
    no_error_box(page)


def controls_on_the_first_click(page: Page, console: str, engine: Engine) -> None:
    open_page(page, console, "controls", "Controls")
    form = a_form(page, "Apply to the agent type")
    choose(page, form, "Agent type", "rebooking")  # choices start empty: a stale one fell back to the first
    form.get_by_label("Reason", exact=True).fill("rebooking replies are off-brand")
    form.get_by_role("button", name="Apply to the agent type").click(force=True)

    def disabled_types() -> tuple[str, ...]:
        with read_session(engine) as s:
            return get_activation_state(s).disabled_agent_types

    wait_for(lambda: disabled_types() == ("rebooking",), timeout=20, what="the agent type disabled")
    settle(page)
    expect(page.get_by_text("No worker is running; version")).to_be_visible()
    stays_idle(page, seconds=3)  # nothing to follow: the propagation panel once asked every second, for ever
    form = a_form(page, "Apply to the instance")
    choose(page, form, "Instance")
    form.get_by_label("Reason", exact=True).fill("shop asked for a pause")
    form.get_by_role("button", name="Apply to the instance").click(force=True)

    def first_instance() -> str:  # the picker's first entry: shop 1's first agent type (seeded active)
        with read_session(engine) as s:
            return s.scalars(select(AgentInstance.status).order_by(AgentInstance.shop_id, AgentInstance.agent_type)
                             .limit(1)).one()

    wait_for(lambda: first_instance() == "paused", timeout=20, what="the instance paused")
    settle(page)
    expect(form.get_by_label("Reason", exact=True)).to_have_value("")  # emptied after it went through
    no_error_box(page)


def test_add_user_form_keeps_role_and_fields_after_an_error(console: str, page: Page, engine: Engine) -> None:
    sign_in(page, console, "admin")
    open_page(page, console, "users", "Users and tokens")
    form = a_form(page, "Add user")
    form.get_by_label("User name").fill("sue")
    form.get_by_label("Role").click()
    page.get_by_role("option", name="support").click()
    form.get_by_label("Shops").fill("2")
    form.get_by_label("Initial password").fill("short")
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_text("The password must have at least 10 characters.")).to_be_visible(timeout=20_000)
    expect(form.get_by_label("User name")).to_have_value("sue")
    expect(form.get_by_label("Shops")).to_have_value("2")
    expect(form.get_by_role("combobox", name="Role")).to_have_value("support")
    form.get_by_label("Initial password").fill("long enough now")
    form.get_by_role("button", name="Add user").click()
    wait_for(lambda: user_role(engine, "sue") == "support", timeout=20, what="sue added as support")
    settle(page)
    expect(form.get_by_label("User name")).to_have_value("")
    no_error_box(page)


def user_role(engine: Engine, username: str) -> str | None:
    from core.models import User

    with read_session(engine) as s:
        return s.scalars(select(User.role).where(User.username == username)).one_or_none()


def test_a_double_click_on_issue_token_issues_one_token_and_shows_it(console: str, page: Page, engine: Engine) -> None:
    """The walkthrough's finding: two clicks in a row issued two tokens, and the first was never shown to anyone."""
    from core.models import ApiToken

    sign_in(page, console, "admin")
    open_page(page, console, "users", "Users and tokens")
    page.get_by_role("tab", name="API tokens").click()
    box = page.get_by_role("button", name="Issue token").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    page.wait_for_timeout(120)  # a second click on the same spot while the first one's run is under way
    page.mouse.click(x, y)
    expect(page.get_by_text("Copy the token now")).to_be_visible(timeout=20_000)
    settle(page)
    with read_session(engine) as s:
        prefixes = [t.prefix for t in s.scalars(select(ApiToken))]
    assert len(prefixes) == 1
    shown = page.locator('[data-testid="stCode"]').inner_text().strip()
    assert shown.startswith(prefixes[0])
    page.get_by_role("button", name="I have copied it").click()
    expect(page.locator('[data-testid="stCode"]')).to_have_count(0, timeout=20_000)
    page.get_by_role("button", name="Issue token").click()  # a later click is a new token, shown in its place
    expect(page.locator('[data-testid="stCode"]')).to_have_count(1, timeout=20_000)
    settle(page)
    with read_session(engine) as s:
        newest = s.scalars(select(ApiToken.prefix).order_by(ApiToken.id.desc())).first()
        assert s.scalar(select(func.count()).select_from(ApiToken)) == 2
    assert page.locator('[data-testid="stCode"]').inner_text().strip().startswith(newest) and newest != prefixes[0]
    no_error_box(page)


def test_an_issued_token_survives_a_reload_until_it_is_marked_copied(console: str, page: Page, engine: Engine) -> None:
    """The walkthrough's finding: F5 before copying took the new token off screen for good (it stays active), while
    the README promises it is shown until its issuer marks it copied."""
    from core.models import ApiToken

    sign_in(page, console, "admin")
    open_page(page, console, "users", "Users and tokens")
    page.get_by_role("tab", name="API tokens").click()
    page.get_by_role("button", name="Issue token").click()
    expect(page.get_by_text("Copy the token now")).to_be_visible(timeout=20_000)
    settle(page)
    issued = page.locator('[data-testid="stCode"]').inner_text().strip()
    with read_session(engine) as s:
        assert issued.startswith(s.scalars(select(ApiToken.prefix)).one())
    open_page(page, console, "users", "Users and tokens")  # F5: a new Streamlit session, resumed from the cookie
    page.get_by_role("tab", name="API tokens").click()
    expect(page.locator('[data-testid="stCode"]')).to_have_count(1, timeout=20_000)
    assert page.locator('[data-testid="stCode"]').inner_text().strip() == issued
    expect(page.get_by_role("button", name="Issue token")).to_have_count(0)
    page.get_by_role("button", name="I have copied it").click()
    expect(page.locator('[data-testid="stCode"]')).to_have_count(0, timeout=20_000)
    open_page(page, console, "users", "Users and tokens")  # marked copied: gone, reload or not
    page.get_by_role("tab", name="API tokens").click()
    expect(page.get_by_role("button", name="Issue token")).to_be_visible(timeout=20_000)
    expect(page.locator('[data-testid="stCode"]')).to_have_count(0)
    no_error_box(page)
