"""An engineer meets a firing alert in the browser, acknowledges it, and applies its mitigation (the kill switch)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, select

from core.alerts.evaluator import evaluate
from core.db import read_session
from core.models import AlertRule, AlertState, AuditRecord
from core.queries.settings import get_activation_state
from core.services import alerts
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from tests.e2e.conftest import choose, no_error_box, open_page, settle, sign_in
from tests.support.data import ROLE_ACTORS
from tests.support.workers import wait_for


@pytest.fixture
def backend() -> str:
    """What is tested here happens in the browser and the page script, the same whatever the database."""
    return "sqlite"


def alert_row(engine: Engine) -> AlertState:
    with read_session(engine) as s:
        return s.scalars(select(AlertState)).one()


def test_engineer_acknowledges_an_alert_and_applies_its_mitigation(console: str, page: Page, engine: Engine) -> None:
    alerts.save_rule(actor=ROLE_ACTORS["engineer"], spec={
        "key": "unauthorized", "name": "Refused client-data reads", "metric": "unauthorized_access", "threshold": 0,
        "severity": "critical", "rollback_trigger": True}, uow=UnitOfWork(engine))
    record_refusal(actor=ROLE_ACTORS["support"], action="conversation.read", target="conversation 7",
                   reason="outside shop scope", uow=UnitOfWork(engine))
    evaluate(engine, owner="e2e")
    alert_id = alert_row(engine).id
    sign_in(page, console, "engineer")
    expect(page.get_by_text("Firing alerts: 1")).to_be_visible(timeout=20_000)
    open_page(page, console, "alerts", "Alerts")
    form = page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="Apply to the alert"))

    def choose_the_alert() -> None:  # the choice starts empty (a stale one fell back to the first alert)
        choose(page, form, "Alert", f"#{alert_id} unauthorized")

    choose_the_alert()
    form.get_by_label("Reason or comment (required)").fill("on it, checking the support account")
    form.get_by_role("button", name="Apply to the alert").click(force=True)
    wait_for(lambda: alert_row(engine).acked_by == "engineer", timeout=20, what="the acknowledgement")
    settle(page)
    expect(page.get_by_text(f"Alert #{alert_id} acknowledged by engineer.")).to_be_visible(timeout=20_000)

    choose_the_alert()
    form.get_by_label("Action").click()
    page.get_by_role("option", name="Kill switch").click()
    form.get_by_label("Reason or comment (required)").fill("stop the agents while we look")
    form.get_by_role("button", name="Apply to the alert").click(force=True)
    wait_for(lambda: not _running(engine), timeout=20, what="the kill switch")
    settle(page)
    expect(page.get_by_text(f"Kill switch engaged for alert #{alert_id}.")).to_be_visible(timeout=20_000)
    with read_session(engine) as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "kill_switch.engage")).one()
    assert rec.actor == "engineer" and rec.reason == f"alert #{alert_id} (unauthorized): stop the agents while we look"
    edit_a_rule_twice(page, engine)
    no_error_box(page)


def edit_a_rule_twice(page: Page, engine: Engine) -> None:
    """The rule editor stays open after a save, so a second change needs no click to find it again (it folded
    away as soon as a rule was chosen, and on every save)."""
    page.get_by_text("Add or edit a rule").click()
    settle(page)
    editor = page.locator('[data-testid="stExpander"]').filter(has=page.get_by_text("Add or edit a rule"))
    choose(page, editor, "Rule", "unauthorized")
    settle(page)  # the form is drawn again with the rule in it
    for name in ("Refused reads of client data", "Refused client-data reads (any shop)"):
        editor.get_by_label("Name", exact=True).fill(name)
        editor.get_by_role("button", name="Save rule").click(force=True)
        wait_for(lambda n=name: _rule_name(engine) == n, timeout=20, what="the rule saved")
        settle(page)
        expect(page.get_by_text("Rule unauthorized saved.")).to_be_visible(timeout=20_000)
        expect(editor.get_by_role("button", name="Save rule")).to_be_visible()


def _rule_name(engine: Engine) -> str:
    with read_session(engine) as s:
        return s.scalars(select(AlertRule.name).where(AlertRule.key == "unauthorized")).one()


def _running(engine: Engine) -> bool:
    with read_session(engine) as s:
        return get_activation_state(s).running
