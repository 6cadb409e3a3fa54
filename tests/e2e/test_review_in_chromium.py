"""Conversation review in headless Chromium: the injection corpus stays inert text, support works a queue, a
product owner sees masked names and a reveal is audited."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, select

from core.auth import system_actor
from core.db import read_session
from core.models import AuditRecord, Client, Conversation, Message, ReviewRecord, utcnow
from core.services import review_queues
from core.uow import UnitOfWork
from tests.e2e.conftest import no_error_box, open_page, settle, sign_in
from tests.support.workers import wait_for

CORPUS = [
    "<script>window.__pwned = 1; alert('script')</script>",
    "<img src=x onerror=\"alert('img')\" id=\"injected-img\">",
    "![tracker](https://evil.example/pixel.png)",
    "[click me](javascript:alert('link'))",
    "<a href=\"https://evil.example/\" id=\"injected-link\">win a prize</a>",
    "&lt;b&gt;entities&lt;/b&gt; &amp; &#60;script&#62;",
    "invoice\u202egpj.exe",
    "<b id=\"injected-bold\">bold?</b> **bold?** _it?_",
    "javascript:alert('bare')",
]


@pytest.fixture
def backend() -> str:
    """What is tested here happens in the browser and the page script, the same whatever the database."""
    return "sqlite"


def _conversation(engine: Engine, shop: int) -> tuple[int, Client]:
    with read_session(engine) as s:
        conv = s.scalars(select(Conversation).where(Conversation.shop_id == shop, Conversation.status == "completed")
                         .order_by(Conversation.id)).first()
        return conv.id, s.get(Client, conv.client_id)


def test_injection_corpus_is_shown_as_inert_text(console: str, page: Page, engine: Engine) -> None:
    conv_id, _ = _conversation(engine, 1)
    with UnitOfWork(engine) as uow:
        uow.session.add_all([Message(conversation_id=conv_id, role="client", content=c, created_at=utcnow())
                             for c in CORPUS])
        uow.commit()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, console, "engineer")
    open_page(page, console, f"conversations?conversation={conv_id}", "Conversations")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text(CORPUS[0], exact=True)).to_be_visible(timeout=20_000)
    for literal in (CORPUS[1], CORPUS[3], CORPUS[5], "invoice[U+202E]gpj.exe", "**bold?**"):
        expect(main.get_by_text(literal).first).to_be_visible()
    assert dialogs == []
    assert page.evaluate("window.__pwned === undefined")
    assert main.locator("#injected-img, #injected-link, #injected-bold, script, img[src='x']").count() == 0
    assert main.locator("a[href^='javascript:'], a[href*='evil.example'], img[src*='evil.example']").count() == 0
    no_error_box(page)


def test_support_works_a_queue(console: str, page: Page, engine: Engine) -> None:
    review_queues.fill_queues(actor=system_actor("test"), uow=UnitOfWork(engine))
    sign_in(page, console, "support")
    open_page(page, console, "review", "Review queues")
    page.get_by_role("combobox", name="Queue").click()
    page.get_by_role("option", name="opt-outs").click()
    page.get_by_role("button", name="Next item").click()
    first = page.get_by_role("heading", name="Conversation ")
    expect(first).to_be_visible(timeout=20_000)
    settle(page)
    seen = first.inner_text()
    form = page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="Submit review"))
    form.get_by_text("2", exact=True).click()
    form.get_by_role("combobox", name="Flags").click()
    page.get_by_role("option", name="opt_out_ignored").click()
    page.keyboard.press("Escape")
    form.get_by_label("Note").click()  # a person clicks into the note to type it
    form.get_by_label("Note").fill("wrote again after STOP")
    form.get_by_role("button", name="Submit review").click(force=True)  # once, as a person does

    def reviewed() -> list[tuple[int, list]]:
        with read_session(engine) as s:
            return [(r.rating, r.flags) for r in s.scalars(select(ReviewRecord))]

    try:
        wait_for(lambda: reviewed() == [(2, ["opt_out_ignored"])], timeout=20, what="the review saved")
    except AssertionError:
        page.screenshot(path="/tmp/review_e2e.png", full_page=True)
        alerts = page.locator('[data-testid="stAlert"], [data-testid="stToast"]').all_inner_texts()
        raise AssertionError(f"saved: {reviewed()}; alerts {alerts}") from None
    settle(page)
    page.get_by_role("button", name="Next item").click()
    expect(page.get_by_role("heading", name="Conversation ")).not_to_have_text(seen, timeout=20_000)
    no_error_box(page)


def test_product_owner_sees_masked_names_and_reveals_with_a_reason(console: str, page: Page, engine: Engine) -> None:
    conv_id, client = _conversation(engine, 2)
    full = f"{client.first_name} {client.last_name}"
    sign_in(page, console, "po")
    open_page(page, console, f"conversations?conversation={conv_id}", "Conversations")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text(f"Client: {client.first_name[0]}. {client.last_name[0]}.")).to_be_visible(timeout=20_000)
    assert main.get_by_text(full).count() == 0
    page.get_by_label("Reason for revealing (required)").fill("client phoned about a double booking")
    page.get_by_role("button", name="Reveal client data").click(force=True)

    def reveals() -> list[tuple[str, str]]:
        with read_session(engine) as s:
            return [(r.actor, r.reason) for r in s.scalars(select(AuditRecord).where(
                AuditRecord.action == "client.reveal"))]

    wait_for(lambda: reveals() == [("po", "client phoned about a double booking")], timeout=20, what="the reveal")
    settle(page)
    expect(main.get_by_text(f"Client: {full}")).to_be_visible(timeout=20_000)
    no_error_box(page)
