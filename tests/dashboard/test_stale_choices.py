"""A choice made on a page, then changed by someone else before the click (found by a walkthrough with two browsers).

Streamlit puts a choice it no longer finds among the options back to the first option: the forms then acknowledged
another alert, removed another rule, revoked another token and disabled another agent type. A button drawn for one
state ("Disable") acted on the state found at the click (it enabled). Each now acts on what the person saw, or says
in one sentence that it has gone."""
from __future__ import annotations

from sqlalchemy import Engine, select

from core.alerts.evaluator import evaluate
from core.auth import system_actor
from core.db import read_session
from core.models import AgentSettings, AlertRule, AlertState, ApiToken, Conversation, User
from core.services import alerts, tokens, users
from core.services import review as rs
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from dashboard import alert_widgets
from tests.dashboard.conftest import in_form, open_app, shown, sign_in, submit
from tests.support.data import ROLE_ACTORS

ENGINEER, ADMIN = ROLE_ACTORS["engineer"], ROLE_ACTORS["admin"]
GONE = "Since the list was drawn, {} left it (someone else acted on it): choose {}."  # markdown source


def _two_firing_rules(engine: Engine) -> None:
    alert_widgets.firing_count.clear()
    for key in ("a_first", "b_second"):
        alerts.save_rule(actor=ENGINEER, spec={"key": key, "name": key, "metric": "unauthorized_access",
                                               "threshold": 0, "severity": "critical"}, uow=UnitOfWork(engine))
    record_refusal(actor=ROLE_ACTORS["support"], action="conversation.read", target="conversation 99",
                   reason="outside shop scope", uow=UnitOfWork(engine))
    evaluate(engine, owner="test")


def _alerts_page(username: str):  # noqa: ANN202 - AppTest
    at = sign_in(open_app(), username)
    at.switch_page("../pages/alerts.py").run()
    assert not at.exception
    return at


def _alert_of(engine: Engine, key: str) -> AlertState:
    with read_session(engine) as s:
        return s.scalars(select(AlertState).join(AlertRule).where(AlertRule.key == key)).one()


def test_an_alert_chosen_then_removed_is_not_replaced_by_the_first_one(console_db: Engine) -> None:
    _two_firing_rules(console_db)
    at = _alerts_page("engineer")
    second = _alert_of(console_db, "b_second").id
    in_form(at, "alert_act", "Alert").set_value(second)
    in_form(at, "alert_act", "Reason or comment (required)").input("looking into it")
    alerts.delete_rule(actor=ADMIN, key="b_second", uow=UnitOfWork(console_db))  # another engineer, meanwhile
    at = submit(at, "alert_act")
    assert not at.exception
    assert [e.value for e in at.error] == [GONE.format(f"#{second} b\\_second", "an alert")]
    assert _alert_of(console_db, "a_first").acked_by is None  # it acknowledged #1, the critical one, before
    assert in_form(at, "alert_act", "Reason or comment (required)").value == "looking into it"


def test_a_rule_chosen_for_removal_then_removed_removes_nothing_else(console_db: Engine) -> None:
    _two_firing_rules(console_db)
    at = _alerts_page("engineer")
    in_form(at, "alert_remove_rule", "Remove rule").set_value("b_second")
    alerts.delete_rule(actor=ADMIN, key="b_second", uow=UnitOfWork(console_db))
    at = submit(at, "alert_remove_rule")
    assert [e.value for e in at.error] == [GONE.format("b\\_second", "a rule")]
    with read_session(console_db) as s:
        assert s.scalars(select(AlertRule.key)).all() == ["a_first"]


def test_a_token_chosen_then_revoked_elsewhere_revokes_no_other(console_db: Engine) -> None:
    first = tokens.create_token(actor=ADMIN, username="engineer", uow=UnitOfWork(console_db))
    second = tokens.create_token(actor=ADMIN, username="po", uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.selectbox(key="revoke_pick").set_value(second.id).run()
    tokens.revoke_token(actor=ADMIN, token_id=second.id, uow=UnitOfWork(console_db))  # the other admin
    at.button(key="do_revoke").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [GONE.format(f"token {second.id} (po)", "a token")]
    with read_session(console_db) as s:
        assert s.get(ApiToken, first.id).revoked_at is None


def test_the_only_token_revoked_elsewhere_gets_a_sentence_not_silence(console_db: Engine) -> None:
    """With no active token left, the Revoke button was drawn disabled in the click's own run: nothing was said."""
    only = tokens.create_token(actor=ADMIN, username="engineer", uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.selectbox(key="revoke_pick").set_value(only.id).run()
    tokens.revoke_token(actor=ADMIN, token_id=only.id, uow=UnitOfWork(console_db))  # the other admin
    at.button(key="do_revoke").click().run()
    assert [e.value for e in at.error] == [GONE.format(f"token {only.id} (engineer)", "a token")]


def test_revoke_with_nothing_chosen_asks_for_a_choice_and_blames_no_one(console_db: Engine) -> None:
    """The walkthrough's finding: a click with nothing chosen was told someone else might have acted."""
    token = tokens.create_token(actor=ADMIN, username="engineer", uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.button(key="do_revoke").click().run()
    assert [e.value for e in at.error] == ["Choose a token first."]
    at.selectbox(key="revoke_pick").set_value(token.id).run()
    at.selectbox(key="revoke_pick").set_value(None).run()  # chosen, then emptied again by the person
    at.button(key="do_revoke").click().run()
    assert [e.value for e in at.error] == ["Choose a token first."]
    other = tokens.create_token(actor=ADMIN, username="po", uow=UnitOfWork(console_db))
    at.run()
    tokens.revoke_token(actor=ADMIN, token_id=other.id, uow=UnitOfWork(console_db))  # another admin, meanwhile
    at.button(key="do_revoke").click().run()  # this admin had chosen nothing: the other's revoke is no news here
    assert [e.value for e in at.error] == ["Choose a token first."]
    at.selectbox(key="revoke_pick").set_value(token.id).run()
    at.button(key="do_revoke").click().run()  # revoked by this admin: it leaves the list, and that is no news
    assert not at.error
    at.button(key="do_revoke").click().run()
    assert [e.value for e in at.error] == ["Choose a token first."]


def test_disable_clicked_after_someone_else_disabled_does_not_enable(console_db: Engine) -> None:
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.selectbox(key="change_user").set_value("po").run()
    assert at.button(key="do_disable").label == "Disable"
    users.set_disabled(actor=ADMIN, username="po", disabled=True, uow=UnitOfWork(console_db))  # the other admin
    at.button(key="do_disable").click().run()
    assert not at.exception
    with read_session(console_db) as s:
        assert s.scalars(select(User.disabled).where(User.username == "po")).one() is True
    assert [i.value for i in at.info] == ["po is already disabled (someone else did it meanwhile); nothing changed."]
    at.button(key="do_disable").click().run()  # the button now says Enable, and does
    with read_session(console_db) as s:
        assert s.scalars(select(User.disabled).where(User.username == "po")).one() is False


def test_a_pattern_chosen_then_reordered_disables_the_type_chosen(console_db: Engine) -> None:
    with read_session(console_db) as s:
        convs = s.scalars(select(Conversation).where(Conversation.status == "completed")
                          .order_by(Conversation.id)).all()
    by_type: dict[str, list[int]] = {}
    for c in convs:
        by_type.setdefault(c.agent_type, []).append(c.id)
    (busy, busy_ids), (quiet, quiet_ids) = sorted(by_type.items(), key=lambda kv: -len(kv[1]))[:2]

    def flag(ids: list[int]) -> None:
        for cid in ids:
            rs.submit_review(actor=system_actor("test"), conversation_id=cid, rating=1, flags=["tone"],
                             uow=UnitOfWork(console_db))

    flag(busy_ids[:2])
    flag(quiet_ids[:1])
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/review.py").run()
    form = next(b.form_id for b in at.button if (b.form_id or "").startswith("disable_pattern"))
    in_form(at, "disable_pattern", "Pattern").set_value((quiet, "tone"))
    in_form(at, "disable_pattern", "Reason (required)").input(f"{quiet} tone is off")
    flag(quiet_ids[1:4])  # more reviews flag it meanwhile: it now heads the list
    at = submit(at, form)
    assert not at.exception
    with read_session(console_db) as s:
        disabled = s.get(AgentSettings, 1).disabled_agent_types
    assert (at.error, disabled) == ([], [quiet]), busy  # it disabled the type then at the top of the list


def test_the_next_user_of_a_tab_inherits_nothing_of_the_last_one(console_db: Engine) -> None:
    """An admin took a review item and signed out; support signed in in the same tab and was shown the admin's
    item as "held for you" (and recorded reading a shop it cannot see)."""
    from core.services import review_queues

    review_queues.fill_queues(actor=system_actor("test"), uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/review.py").run()
    at.selectbox(key="review_queue").select("opt-outs")
    held = submit(at, "next_item").session_state["review_item"]
    at.sidebar.button(key="sign_out").click().run()
    at = sign_in(at, "support")
    at.switch_page("../pages/review.py").run()
    assert not at.exception
    assert f"Conversation {held['conversation_id']}" not in [h.value for h in at.subheader]
    assert not any(f"Reviewing item {held['item_id']}" in c for c in shown(at.caption))


def test_out_of_range_numbers_get_a_sentence_not_a_held_back_click(console_db: Engine) -> None:
    _two_firing_rules(console_db)
    at = _alerts_page("engineer")
    in_form(at, "alert_silence", "Matchers (e.g. rule=error_rate, shop=1)").input("rule=a_first")
    in_form(at, "alert_silence", "Minutes").set_value(0)
    in_form(at, "alert_silence", "Reason (required)").input("maintenance")
    at = submit(at, "alert_silence")
    assert [e.value for e in at.error][0].startswith("A silence lasts from 1 minute")
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    in_form(at, "issue_token", "Expires in days").set_value(5000)
    at = submit(at, "issue_token")
    assert len(at.error) == 1 and "3650" in at.error[0].value and not at.code


def test_an_apply_that_changes_nothing_says_so(console_db: Engine) -> None:
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    mode = in_form(at, "activation", "Mode").value
    in_form(at, "activation", "Reason (required)").input("same again")
    at = submit(at, "activation")
    assert not at.exception and not at.error
    assert any(f"Mode {mode} with this scope is already in force" in i for i in shown(at.info))
    assert in_form(at, "activation", "Reason (required)").value == "same again"


def test_a_rule_on_a_shop_that_does_not_exist_is_refused(console_db: Engine) -> None:
    import pytest

    from core.errors import UserInputError

    with pytest.raises(UserInputError, match="No shop with id 999"):
        alerts.save_rule(actor=ENGINEER, spec={"key": "nowhere", "name": "nowhere", "metric": "error_rate",
                                               "threshold": 0.1, "shop_id": 999}, uow=UnitOfWork(console_db))
    with read_session(console_db) as s:
        assert s.scalars(select(AlertRule.key)).all() == []
