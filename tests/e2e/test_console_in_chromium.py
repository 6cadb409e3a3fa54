"""The console in headless Chromium: sign in, see only your pages, switch the system off through the dialog."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from core.db import read_session
from core.queries.settings import get_activation_state
from core.services import controls
from core.uow import UnitOfWork
from tests.e2e.conftest import no_error_box, open_page, settle, sign_in
from tests.support.data import ROLE_ACTORS


def test_engineer_switches_off_through_the_dialog(console: str, page: Page, engine: Engine) -> None:
    sign_in(page, console, "engineer")
    expect(page.locator('[data-testid="stSidebarNav"]')).to_contain_text("Controls")
    open_page(page, console, "controls", "Controls")
    main = page.get_by_test_id("stMainBlockContainer")  # the sidebar shows the state as well
    expect(main.get_by_text("RUNNING")).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Turn off…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("conversations in flight will finish")
    # Meanwhile an admin narrows the scope: the dialog's click is refused, and the page shows the state as it now
    # is (it stayed at the old version once the dialog was closed), with the way to turn it off still there.
    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="limited", shops=[1], reason="admin narrows",
                            uow=UnitOfWork(engine))
    dialog.get_by_label("Reason (required)").fill("e2e drill")
    dialog.get_by_role("button", name="Turn off now").click(force=True)
    expect(page.get_by_text("while you were looking at version")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(main.get_by_text("RUNNING mode limited")).to_be_visible()
    page.get_by_role("button", name="Turn off…").click()
    expect(dialog).to_contain_text("conversations in flight will finish")
    dialog.get_by_label("Reason (required)").fill("e2e drill")
    dialog.get_by_role("button", name="Turn off now").click(force=True)  # once, as a person does
    expect(main.get_by_text("STOPPED")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("stSidebarUserContent").get_by_text("STOPPED")).to_be_visible()
    no_error_box(page)
    with read_session(engine) as s:
        state = get_activation_state(s)
    assert (state.mode, state.changed_by, state.reason) == ("off", "engineer", "e2e drill")


def test_support_finds_no_control_they_may_not_use(console: str, page: Page) -> None:
    sign_in(page, console, "support")
    menu = page.get_by_test_id("stSidebar")
    expect(menu.get_by_role("link", name=re.compile("Agent health"))).to_be_visible()
    for other in ("Controls", "Rollbacks", "Audit log", "Users and tokens"):
        expect(menu.get_by_role("link", name=re.compile(other))).to_have_count(0)
    page.goto(console + "/controls")  # an old link: a new Streamlit session, resumed from the cookie
    expect(page.get_by_text("may not open Controls")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Turn off…")).to_have_count(0)
    expect(menu.get_by_role("link", name=re.compile("Agent health"))).to_be_visible()  # the menu is still there
    page.get_by_role("main").get_by_role("link", name=re.compile("Agent health")).click()  # and the way back
    expect(page.get_by_role("heading", name="Agent health")).to_be_visible(timeout=20_000)


def test_a_typed_health_url_opens_agent_health(console: str, page: Page) -> None:
    """/health, the page's own name in the menu's links, answered "Page not found" (Streamlit serves the first
    page only at /)."""
    sign_in(page, console, "support")
    page.goto(console + "/health")
    expect(page.get_by_role("heading", name="Agent health")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Last updated")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    no_error_box(page)


def test_a_link_opened_signed_out_leads_to_its_page_after_sign_in(console: str, page: Page, engine: Engine) -> None:
    """Signed out, /conversations?conversation=N showed "Page not found" over the sign-in form and, once signed
    in, Agent health without the conversation: a link shared in an incident channel led nowhere."""
    from sqlalchemy import select

    from core.models import Conversation
    from core.seed.runner import demo_password

    with read_session(engine) as s:
        conv_id = s.scalar(select(Conversation.id).where(Conversation.status == "completed").limit(1))
    page.goto(f"{console}/conversations?conversation={conv_id}")
    page.get_by_label("User name").fill("engineer")
    page.get_by_role("textbox", name="Password").fill(demo_password("engineer"))
    expect(page.get_by_text("Page not found")).to_have_count(0)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Conversations")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name=f"Conversation {conv_id}")).to_be_visible(timeout=30_000)
    assert page.url.endswith(f"/conversations?conversation={conv_id}")
    no_error_box(page)


ENDED_SENTENCE = "Your session has ended"


def test_signing_out_after_a_reload_shows_the_plain_sign_in_form(console: str, page: Page) -> None:
    """Signed in, then a reload (F5, a typed URL, going back): the new Streamlit session is resumed from the cookie,
    and a click on Sign out there said the session had ended elsewhere, as if someone else had ended it."""
    sign_in(page, console, "engineer")
    open_page(page, console, "", "Agent health")  # the reload: this page's session read the cookie when it loaded
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20_000)
    settle(page)
    expect(page.get_by_text(ENDED_SENTENCE)).to_have_count(0)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    open_page(page, console, "", "BookedBarber agent operations")  # and the reload after it: still signed out
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_text(ENDED_SENTENCE)).to_have_count(0)
    no_error_box(page)


def test_a_session_ended_elsewhere_after_a_reload_still_says_so(console: str, page: Page, engine: Engine) -> None:
    """The other side of the fix above: a reloaded tab whose session another tab (or an admin) ended says why it is
    back at the sign-in form."""
    from core.services import users

    sign_in(page, console, "engineer")
    open_page(page, console, "", "Agent health")
    users.set_disabled(actor=ROLE_ACTORS["admin"], username="engineer", disabled=True, uow=UnitOfWork(engine))
    page.get_by_role("link", name=re.compile("Agent health")).first.click()  # any click reruns the page
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_text(ENDED_SENTENCE)).to_be_visible()
    no_error_box(page)
