"""Controls, Rollbacks and Audit pages through the real entrypoint: allowed or refused as the role table says."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from core.auth import Role
from core.db import read_session
from core.models import AuditRecord
from core.queries.settings import get_activation_state, shop_in_percent
from core.services import controls
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from dashboard import issued_tokens
from dashboard.navigation import PAGES
from tests.dashboard.conftest import body_text, in_form, open_app, reloaded_with_cookie_of, shown, sign_in, submit
from tests.support.data import ROLE_ACTORS

PAGE_ROLES = {  # the design's role table, for the console's pages
    "Agent health": {"po", "support", "engineer", "admin"},
    "Checklist": {"po", "support", "engineer", "admin"},  # viewers see it; only engineers and admins act on it
    "Alerts": {"po", "support", "engineer", "admin"},
    "Conversations": {"po", "support", "engineer", "admin"},
    "Review queues": {"po", "support", "engineer", "admin"},
    "Controls": {"engineer", "admin"},
    "Rollbacks": {"engineer", "admin"},
    "Audit log": {"po", "engineer", "admin"},
    "Users and tokens": {"admin"},
}
USERS = {"po": Role.PRODUCT_OWNER, "support": Role.SUPPORT, "engineer": Role.ENGINEER, "admin": Role.ADMIN}


def last_audit(engine: Engine) -> AuditRecord:
    with read_session(engine) as s:
        return s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()


@pytest.mark.parametrize("username", sorted(USERS))
def test_menu_lists_exactly_the_roles_pages(console_db: Engine, username: str, monkeypatch) -> None:
    """The menu the entrypoint hands to st.navigation, as it is built for a signed-in user."""
    import streamlit as st

    built: list[list] = []
    real = st.navigation

    def spy(pages, **kwargs):  # noqa: ANN001, ANN003, ANN202 - records what the console asked Streamlit to show
        built.append([(p.title, p.visibility) for p in pages])
        return real(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", spy)
    at = sign_in(open_app(), username)
    assert not at.exception
    shown = [title for title, visibility in built[-1] if visibility == "visible"]
    assert shown == [p.title for p in PAGES if username in PAGE_ROLES[p.title]]


@pytest.mark.parametrize("username", sorted(USERS))
@pytest.mark.parametrize("page", ["controls.py", "rollbacks.py", "audit.py", "users.py"])
def test_opening_a_page_url_is_allowed_or_refused(console_db: Engine, username: str, page: str) -> None:
    at = sign_in(open_app(), username)
    at.switch_page(f"../pages/{page}").run()
    assert not at.exception
    title = next(p.title for p in PAGES if p.file == page)
    if username in PAGE_ROLES[title]:
        assert title in [t.value for t in at.title]
    else:
        assert any("may not open" in e.value for e in at.error)
        assert title not in [t.value for t in at.title]
        rec = last_audit(console_db)
        assert (rec.actor, rec.action, rec.outcome, rec.target) == (username, "page.open", "refused", title)


def trigger_row(at, key_words: str) -> dict:  # noqa: ANN001
    table = at.dataframe[-1].value
    return table[table["trigger"].str.contains(key_words)].iloc[0].to_dict()


def test_a_menu_slip_is_not_an_unauthorized_data_access(console_db: Engine) -> None:
    slip = sign_in(open_app(), "po")
    slip.switch_page("../pages/controls.py").run()
    assert any("may not open" in e.value for e in slip.error)
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    assert not at.exception
    assert "Rollback trigger fired" not in body_text(at)
    assert not [b for b in at.button if (b.form_id or "").startswith("trigger_rollback")]
    # A count is a whole number; a time or a size carries its unit (the table said "1.0" and "200" without one).
    assert (trigger_row(at, "Unauthorized")["now"], trigger_row(at, "Unauthorized")["limit"]) == ("0", "0")
    assert trigger_row(at, "query time")["limit"] == "200 ms" and trigger_row(at, "memory")["limit"] == "2,048 MB"
    record_refusal(actor=ROLE_ACTORS["support"], action="conversation.read", target="conversation 9",
                   reason="shop 2 is not assigned", uow=UnitOfWork(console_db))
    at.run()
    assert "Rollback trigger fired: Unauthorized data access attempts (24 h) = 1 (limit 0)" in body_text(at)
    assert trigger_row(at, "Unauthorized")["detail"] == "sam: conversation.read conversation 9"


def test_a_fired_trigger_stops_the_system_only_with_a_reason(console_db: Engine) -> None:
    """The trigger's button was one click away from stopping every agent, with no reason asked (a false alarm, a
    menu slip by a colleague, would stop production)."""
    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(console_db))
    record_refusal(actor=ROLE_ACTORS["support"], action="conversation.read", target="conversation 9",
                   reason="shop 2 is not assigned", uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    at = submit(at, "trigger_rollback")
    assert not at.exception and "A reason is required for every change to the agent system." in shown(at.error)
    with read_session(console_db) as s:
        assert get_activation_state(s).running
    in_form(at, "trigger_rollback", "Reason").input("support keeps opening shop 2")
    at = submit(at, "trigger_rollback")
    assert not at.exception
    with read_session(console_db) as s:
        assert not get_activation_state(s).running
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "rollback.immediate.start")).one()
    assert rec.reason == "support keeps opening shop 2 (rollback trigger: unauthorized)"


def test_engineer_turns_the_system_off_with_a_reason(console_db: Engine) -> None:
    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    assert "RUNNING" in body_text(at)
    at.button(key="kill_open").click().run()
    assert "conversations in flight will finish" in body_text(at)
    # In the browser the dialog reruns on its own; AppTest reruns the page, so the dialog's opener is clicked again.
    in_form(at, "kill", "Reason (required)").input("replies are off-brand")
    next(b for b in at.button if b.label == "Turn off now").click()
    at.button(key="kill_open").click().run()
    assert not at.exception
    with read_session(console_db) as s:
        state = get_activation_state(s)
    assert state.mode == "off" and state.changed_by == "engineer"
    rec = last_audit(console_db)
    assert (rec.action, rec.source, rec.reason) == ("kill_switch.engage", "console", "replies are off-brand")
    assert "No worker is running; version 3 will apply when one starts." in body_text(at)
    assert in_form(at, "activation", "Mode").value == "off"  # the form shows the state as it now is


def test_the_page_follows_a_change_until_every_live_worker_has_it(console_db: Engine) -> None:
    """A live worker that has not seen the new version is named while the page waits; once it has, the outcome is
    shown with the time it took (and the page stops asking)."""
    from datetime import timedelta

    from sqlalchemy import update

    from core.models import WorkerHeartbeat, utcnow

    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(console_db))
    with UnitOfWork(console_db) as uow:
        uow.session.add(WorkerHeartbeat(id="w1", host="h", pid=1, settings_version=2, settings_seen_at=utcnow()))
        uow.commit()
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    at.button(key="kill_open").click().run()
    in_form(at, "kill", "Reason (required)").input("replies are off-brand")
    next(b for b in at.button if b.label == "Turn off now").click()
    at.button(key="kill_open").click().run()
    assert "0 of 1 worker acknowledged version 3; waiting for w1" in shown(at.info)
    with UnitOfWork(console_db) as uow:
        changed_at = get_activation_state(uow.session).changed_at
        uow.session.execute(update(WorkerHeartbeat).values(settings_version=3, last_seen_at=utcnow(),
                                                           settings_seen_at=changed_at + timedelta(seconds=0.4)))
        uow.commit()
    at.run()
    assert "1 of 1 worker acknowledged version 3 in 0.4 s" in shown(at.success)
    assert not any("waiting for" in text for text in shown(at.info))


def test_activation_form_sets_limited_scope(console_db: Engine) -> None:
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/controls.py").run()
    in_form(at, "activation", "Mode").set_value("limited")
    in_form(at, "activation", "Shops (limited)").set_value([1])
    in_form(at, "activation", "Reason (required)").input("staging step 3")
    submit(at, "activation")
    assert not at.exception
    with read_session(console_db) as s:
        state = get_activation_state(s)
    assert (state.mode, state.allowed_shops) == ("limited", (1,))


def _apply_limited_percent(percent: float):  # noqa: ANN202 - an AppTest
    """As admin on Controls: limited mode at PERCENT of shops, reason 'canary', Apply."""
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/controls.py").run()
    in_form(at, "activation", "Mode").set_value("limited")
    in_form(at, "activation", "Or this percentage of shops (limited; 0 = use the list)").set_value(percent)
    in_form(at, "activation", "Reason (required)").input("canary")
    return submit(at, "activation")


def test_a_percentage_over_100_is_one_sentence_and_the_form_keeps_it(console_db: Engine) -> None:
    """The walkthrough's finding: 150 in the percentage box made Apply do nothing, without a word (the box's own
    bound of 100 held the submit back in the browser)."""
    at = _apply_limited_percent(150)
    assert not at.exception
    assert shown(at.error) == ["The shop percentage must be a whole number from 0 to 100 (got 150)."]
    assert in_form(at, "activation", "Reason (required)").value == "canary"
    with read_session(console_db) as s:
        assert get_activation_state(s).mode == "off"


def test_a_fractional_percentage_is_refused_not_cut(console_db: Engine) -> None:
    """12.7 % was applied as 12 % without a word."""
    at = _apply_limited_percent(12.7)
    assert not at.exception
    assert shown(at.error) == ["The shop percentage must be a whole number from 0 to 100 (got 12.7)."]
    in_form(at, "activation", "Or this percentage of shops (limited; 0 = use the list)").set_value(12)
    submit(at, "activation")
    with read_session(console_db) as s:
        assert (get_activation_state(s).mode, get_activation_state(s).shop_percent) == ("limited", 12)
    # The banner says the scope, and which shops the percentage picks ("12% of shops" alone said not which).
    picked = [str(i) for i in (1, 2) if shop_in_percent(i, 12)]
    assert f"shops: -; plus 12% of shops ({', '.join(picked) or 'none'}: {len(picked)} of 2)\nagent types: all" \
        in body_text(at)


def test_a_change_from_a_stale_tab_is_refused_with_what_was_typed_kept(console_db: Engine) -> None:
    """Another tab changed the settings while this one was open: Apply here used to redraw the form from the new
    state and drop the change without a word."""
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/controls.py").run()
    controls.set_activation(actor=ROLE_ACTORS["engineer"], mode="full", reason="other tab", uow=UnitOfWork(console_db))
    in_form(at, "activation", "Mode").set_value("limited")
    in_form(at, "activation", "Or this percentage of shops (limited; 0 = use the list)").set_value(25)
    in_form(at, "activation", "Reason (required)").input("canary at 25")
    submit(at, "activation")
    assert not at.exception
    assert [e for e in shown(at.error) if "while you were looking at version" in e], shown(at.error)
    assert in_form(at, "activation", "Reason (required)").value == "canary at 25"
    with read_session(console_db) as s:
        assert get_activation_state(s).mode == "full"
    submit(at, "activation")  # seen the new state and the error: Apply again means it
    with read_session(console_db) as s:
        assert (get_activation_state(s).mode, get_activation_state(s).shop_percent) == ("limited", 25)


def test_audit_page_filters_and_exports(console_db: Engine) -> None:
    at = sign_in(open_app(), "po")
    at.switch_page("../pages/audit.py").run()
    assert not at.exception
    assert "matching records" in body_text(at)
    at.selectbox[0].set_value("sign_in").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["action"]) == {"sign_in"} and "po" in set(table["actor"])


def test_the_actor_filter_matches_the_name_not_a_part_of_it(console_db: Engine) -> None:
    """'po' listed the records of 'support' too (the Chromium walkthrough: 11 records, 6 of them support's)."""
    for name in ("support", "po"):
        sign_in(open_app(), name)
    at = sign_in(open_app(), "po")
    at.switch_page("../pages/audit.py").run()
    at.text_input[0].input("po").run()
    assert set(at.dataframe[0].value["actor"]) == {"po"}
    at.text_input[0].input("s*").run()
    assert set(at.dataframe[0].value["actor"]) == {"support"}


def test_database_rollback_from_the_page_and_restore(console_db: Engine, tmp_path) -> None:
    from sqlalchemy import func, inspect

    from core.cli import main
    from core.models import Client, Shop

    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/rollbacks.py").run()
    assert "agent_conversations" in set(at.dataframe[0].value["agent table"])
    in_form(at, "database", "Type the environment name (development) to confirm").input("development")
    in_form(at, "database", "Reason").input("drill on the demo database")
    submit(at, "database")
    assert not at.exception
    assert "Run 1 (database): approved." in [i.value for i in at.info]
    run_button = next(b for b in at.button if b.key and b.key.startswith("run_"))
    run_button.click().run()
    assert not at.exception
    done = next(t for t in shown(at.success) if "Restore with" in t)  # as the person reads it
    assert "agent_conversations" not in inspect(console_db).get_table_names()
    # The page is drawn again after the run: no Run now left behind, no row counts of tables that are gone.
    assert not any(b.key and b.key.startswith("run_") for b in at.button)
    assert "agent_conversations" not in set(at.dataframe[0].value["agent table"])
    with read_session(console_db) as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 2
        assert s.scalar(select(func.count()).select_from(Client)) == 24
    backup = done.split("backup ")[1].split(".jsonl.gz")[0] + ".jsonl.gz"
    assert main(["db", "restore", backup]) == 0
    assert main(["db", "verify"]) == 0
    runs = at.dataframe[-1].value
    assert (runs["kind"].iloc[0], runs["state"].iloc[0], runs["by"].iloc[0]) == ("database", "done", "engineer")


def requested_database_rollback(console_db: Engine):  # noqa: ANN201 - AppTest
    """An engineer's page after asking for a database rollback, and the run it made."""
    from core.models import RollbackRun

    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/rollbacks.py").run()
    in_form(at, "database", "Type the environment name (development) to confirm").input("development")
    in_form(at, "database", "Reason").input("drill")
    at = submit(at, "database")
    with read_session(console_db) as s:
        return at, s.scalars(select(RollbackRun.id)).one()


def test_a_database_rollback_request_is_withdrawn_from_the_page(console_db: Engine) -> None:
    """A request made by mistake blocked every new one, with no way to withdraw it (a Chromium walkthrough)."""
    from core.models import RollbackRun

    at, run_id = requested_database_rollback(console_db)
    in_form(at, "withdraw_database", "Withdraw request").set_value(run_id)
    at = submit(at, "withdraw_database")
    assert "A reason is required to withdraw a database rollback." in shown(at.error)
    assert in_form(at, "withdraw_database", "Withdraw request").value == run_id  # the choice is kept
    in_form(at, "withdraw_database", "Reason").input("requested on the wrong day")
    at = submit(at, "withdraw_database")
    assert not at.exception and f"Run {run_id} withdrawn." in shown(at.success)
    assert not any(b.key and b.key.startswith("run_") for b in at.button)
    with read_session(console_db) as s:
        assert s.get(RollbackRun, run_id).state == "withdrawn"


def test_a_withdrawal_reason_shows_as_typed_in_the_requesters_banner(console_db: Engine) -> None:
    """The banner of the run a person follows said its outcome as markdown: a reason someone else typed when
    withdrawing it put a working link, in bold, on the requester's page."""
    from core.services import rollbacks

    at, run_id = requested_database_rollback(console_db)
    reason = "[re-login here](https://evil.example/login) **now**"
    rollbacks.withdraw_database_rollback(actor=ROLE_ACTORS["admin"], run_id=run_id, reason=reason,
                                         uow=UnitOfWork(console_db))
    at.run()
    said = [m for m in at.info if f"Run {run_id} (database): withdrawn" in m.value]
    assert len(said) == 1 and r"\[re-login here\](https\://evil" in said[0].value, said  # no link
    assert r"\*\*now\*\*" in said[0].value, said  # no bold
    assert shown(said)[0].endswith(f"withdrawn by {ROLE_ACTORS['admin'].username}: {reason}")


PASSWORD, SHOPS = "Initial password (10 characters or more)", "Shops (support and shop owners), e.g. 1,2"


def add_user(at, fields: dict[str, str]):  # noqa: ANN001, ANN201 - AppTest
    """Open Users and tokens, fill the add-user form with FIELDS (label → value) and submit it once."""
    at.switch_page("../pages/users.py").run()
    for label, value in fields.items():
        widget = in_form(at, "add_user", label)
        widget.set_value(value) if label == "Role" else widget.input(value)
    return submit(at, "add_user")


def test_admin_adds_a_user_and_issues_a_token(console_db: Engine) -> None:
    from core.models import ApiToken, User

    at = add_user(sign_in(open_app(), "admin"), {"User name": "rosa", "Display name": "Rosa Diaz",
                                                 "Role": "engineer", PASSWORD: "a long enough password"})
    assert not at.exception
    with read_session(console_db) as s:
        assert s.scalars(select(User.role).where(User.username == "rosa")).one() == "engineer"
    assert in_form(at, "add_user", "User name").value == ""  # emptied for the next person
    in_form(at, "issue_token", "Token for").set_value("rosa")
    submit(at, "issue_token")
    token = at.code[0].value
    assert token.startswith("bbat_")
    with read_session(console_db) as s:
        assert token not in set(s.scalars(select(ApiToken.token_hash)))
        token_id = s.scalars(select(ApiToken.id)).one()
    assert last_audit(console_db).action == "token.create"
    # The list and the revoke choice show the new token at once, not after a reload.
    assert list(at.dataframe[-1].value["id"]) == [token_id]
    assert at.selectbox(key="revoke_pick").options == [f"token {token_id} (rosa)"]
    at.run()
    assert at.code[0].value == token, "a rerun does not take the token off screen unread"
    assert "Issue token" not in [b.label for b in at.button]  # nothing to click twice while it shows
    at.button(key="token_copied").click().run()
    assert not at.code and "Issue token" in [b.label for b in at.button], "dismissed: gone for good"


def _issued_on_users_page(at):  # noqa: ANN001, ANN202 - AppTest
    """Open Users and tokens in AT and issue a token for the first user; the token shown."""
    at.switch_page("../pages/users.py").run()
    submit(at, "issue_token")
    return at.code[0].value


def test_an_issued_token_is_shown_again_after_a_reload_until_marked_copied(console_db: Engine, monkeypatch) -> None:
    """F5 before copying took the new token off screen for good, while it stayed active."""
    at = sign_in(open_app(), "admin")
    token = _issued_on_users_page(at)
    again = reloaded_with_cookie_of(at, monkeypatch)
    again.switch_page("../pages/users.py").run()
    assert not again.exception
    assert [c.value for c in again.code] == [token]
    assert "Issue token" not in [b.label for b in again.button]
    again.button(key="token_copied").click().run()
    assert not again.code
    at.run()  # the first tab, and any reload, no longer show it either
    assert not at.code and "Issue token" in [b.label for b in at.button]
    assert not reloaded_with_cookie_of(at, monkeypatch).switch_page("../pages/users.py").run().code


def test_signing_out_drops_a_token_not_marked_copied(console_db: Engine) -> None:
    at = sign_in(open_app(), "admin")
    token = _issued_on_users_page(at)
    at.sidebar.button(key="sign_out").click().run()
    assert token not in [h.token for h in issued_tokens._held.values()]  # gone from memory, not only the screen
    sign_in(at, "admin")
    at.switch_page("../pages/users.py").run()
    assert not at.code and "Issue token" in [b.label for b in at.button]


def test_another_session_of_the_same_admin_does_not_see_the_token(console_db: Engine) -> None:
    _issued_on_users_page(sign_in(open_app(), "admin"))
    elsewhere = sign_in(open_app(), "admin")  # another browser: another console session
    elsewhere.switch_page("../pages/users.py").run()
    assert not elsewhere.code and "Issue token" in [b.label for b in elsewhere.button]


def _issue_token_for_days(days: float):  # noqa: ANN202 - an AppTest
    """As admin on Users and tokens: a token for the first user, expiring in DAYS, issued once."""
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    in_form(at, "issue_token", "Expires in days").set_value(days)
    return submit(at, "issue_token")


@pytest.mark.parametrize("days", [0, 5000])
def test_a_token_lifetime_out_of_range_is_said_in_words_not_a_cli_flag(console_db: Engine, days: int) -> None:
    """The page answered "--expires-days must be between 1 and 3650.": a command-line flag, on a form."""
    at = _issue_token_for_days(days)
    assert not at.exception and not at.code
    assert shown(at.error) == [f"A token's lifetime must be a whole number of days from 1 to 3650 (got {days})."]


def test_a_fractional_token_lifetime_is_refused_not_cut(console_db: Engine) -> None:
    """1.5 days issued a token for 1 day without a word."""
    from core.models import ApiToken

    at = _issue_token_for_days(1.5)
    assert not at.exception and not at.code
    assert shown(at.error) == ["A token's lifetime must be a whole number of days from 1 to 3650 (got 1.5)."]
    with read_session(console_db) as s:
        assert s.scalar(select(func.count()).select_from(ApiToken)) == 0
    in_form(at, "issue_token", "Expires in days").set_value(2)
    submit(at, "issue_token")
    assert at.code and not at.error
    with read_session(console_db) as s:
        token = s.scalars(select(ApiToken)).one()
    assert round((token.expires_at - token.created_at).total_seconds() / 86400, 2) == 2


def test_add_user_form_keeps_its_values_after_a_validation_error(console_db: Engine) -> None:
    from core.models import User

    at = add_user(sign_in(open_app(), "admin"), {"User name": "sue", "Role": "support", SHOPS: "2", PASSWORD: "short"})
    assert not at.exception
    assert [e.value for e in at.error] == ["The password must have at least 10 characters."]
    assert in_form(at, "add_user", "User name").value == "sue"
    assert in_form(at, "add_user", "Role").value == "support"
    assert in_form(at, "add_user", SHOPS).value == "2"
    in_form(at, "add_user", PASSWORD).input("long enough now")
    submit(at, "add_user")
    assert not at.exception and not at.error
    with read_session(console_db) as s:
        assert s.scalars(select(User.role).where(User.username == "sue")).one() == "support"


def test_a_user_added_by_someone_else_at_the_same_moment_is_one_sentence(console_db: Engine,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Two admins adding the same name: the one who commits second met the unique name and saw Streamlit's
    exception box; now one sentence, and the form keeps what was typed."""
    from core.services import users
    from tests.integration.test_users import second_admin_adds

    real = users.add_user

    def raced(**kwargs: object) -> object:
        real(**{**kwargs, "actor": ROLE_ACTORS["admin"], "uow": UnitOfWork(console_db)})  # the other admin's
        second_admin_adds(console_db, str(kwargs["username"]))  # this one's insert, past its own check
        raise AssertionError("unreachable")

    monkeypatch.setattr(users, "add_user", raced)
    at = add_user(sign_in(open_app(), "admin"), {"User name": "rosa", "Role": "engineer", PASSWORD: "long enough pw"})
    assert not at.exception
    [said] = shown(at.error)
    assert said.startswith("The database refused the change, and nothing was saved (") and "reload and try" in said
    assert in_form(at, "add_user", "User name").value == "rosa"


def test_a_shops_box_with_markdown_is_refused_in_the_words_typed(console_db: Engine) -> None:
    at = add_user(sign_in(open_app(), "admin"), {"User name": "sue", "Role": "support", SHOPS: "[1](https://x.example)",
                                                 PASSWORD: "long enough now"})
    assert not at.exception
    [said] = at.error
    assert r"\[1\](https\://x.example)" in said.value, said.value  # shown as typed, not as a link
    assert shown([said]) == ["Shops must be numbers separated by commas, such as 1,2 (got '[1](https://x.example)')."]


def test_a_too_short_password_is_one_sentence_not_a_success(console_db: Engine) -> None:
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.selectbox(key="change_user").set_value("po").run()
    in_form(at, "set_password", "New password").input("short")
    submit(at, "set_password")
    assert not at.exception
    assert [e.value for e in at.error] == ["The password must have at least 10 characters."]
    assert not at.toast


def test_the_rollback_banner_and_the_runs_table_agree(console_db: Engine) -> None:
    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/rollbacks.py").run()
    in_form(at, "immediate", "Reason").input("error rate over the goal")
    submit(at, "immediate")
    assert not at.exception
    runs = at.dataframe[-1].value
    row = runs[runs["run"] == 1].iloc[0]
    assert (row["kind"], row["state"]) == ("immediate", "done")  # no worker runs: nothing to wait for
    assert f"Run 1 (immediate): done in {row['duration s']:.1f} s. {row['outcome']}" in [s.value for s in at.success]
    assert in_form(at, "immediate", "Reason").value == ""


def test_a_run_in_any_state_is_shown_with_its_outcome() -> None:
    from streamlit.testing.v1 import AppTest

    def page() -> None:  # AppTest runs this function's body as the script
        from datetime import datetime, timezone

        from core.services.rollbacks import RunView
        from dashboard.rollback_widgets import banner

        at = datetime(2026, 11, 25, 10, 8, tzinfo=timezone.utc)
        banner(RunView(7, "immediate", "already_off", "erin", None, at, at, 0.0, 300.0,
                       "The agent system was already off (settings version 12); nothing was stopped.", {}))

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert [i.value for i in at.info] == ["Run 7 (immediate): already off. The agent system was already off "
                                          "(settings version 12); nothing was stopped."]


def test_the_instances_table_says_what_it_lists(console_db: Engine) -> None:
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    with read_session(console_db) as s:
        from core.models import AgentInstance

        statuses = list(s.scalars(select(AgentInstance.status)))
    idle = sum(1 for st in statuses if st != "active")
    said = f"{idle} of {len(statuses)} instances are not active:" if idle else \
        f"All {len(statuses)} instances are active."
    assert said in [c.value for c in at.caption]


def test_pausing_an_instance_says_so(console_db: Engine) -> None:
    """The form emptied after a pause, without a word."""
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    choice = in_form(at, "instance", "Instance")
    first = choice.options[0]
    choice.set_value(int(first.split()[0].lstrip("#")))  # options read "#12 shop 1 rebooking"
    in_form(at, "instance", "Reason").input("shop asked for a pause")
    at = submit(at, "instance")
    assert not at.exception and not at.error
    assert [t.value for t in at.toast] == [f"Instance {first} is paused now."]


def test_admin_makes_an_engineer_a_support_user_of_a_shop_and_back(console_db: Engine) -> None:
    """The Change role form takes shops (a support user needs some, so the page could not make one), and shops for a
    role that sees every shop are one sentence, the form keeping what was typed."""
    from core.queries.users import list_users

    at = add_user(sign_in(open_app(), "admin"), {"User name": "rosa", "Role": "engineer",
                                                 PASSWORD: "a long enough password"})
    at.selectbox(key="change_user").set_value("rosa").run()
    in_form(at, "change_role", "New role").set_value("support")
    in_form(at, "change_role", "Shops (support and shop owners; empty keeps the ones they have now, if any)").input("2")
    at = submit(at, "change_role")
    assert not at.exception and not at.error

    def rosa() -> tuple[str, list[int]]:
        with read_session(console_db) as s:
            [u] = [u for u in list_users(s, actor=ROLE_ACTORS["admin"]) if u["user"] == "rosa"]
        return u["role"], list(u["shops"])

    assert rosa() == ("support", [2])
    in_form(at, "change_role", "New role").set_value("engineer")
    in_form(at, "change_role", "Shops (support and shop owners; empty keeps the ones they have now, if any)").input("1")
    at = submit(at, "change_role")
    assert shown(at.error) == ["An engineer sees every shop; shops are for support users and shop owners (got 1)."]
    assert in_form(at, "change_role", "Shops (support and shop owners; empty keeps the ones they have now, if any)").value == "1"
    assert rosa() == ("support", [2])
    in_form(at, "change_role", "Shops (support and shop owners; empty keeps the ones they have now, if any)").input("")
    at = submit(at, "change_role")
    assert not at.error and rosa() == ("engineer", [])


def test_choosing_the_role_a_user_has_says_nothing_changed_and_keeps_them_signed_in(console_db: Engine) -> None:
    """The walkthrough: 'walker is now product_owner; their sessions have ended.' for the role walker had, and
    walker's open tab was signed out."""
    from core.models import ConsoleSession, User

    def po_sessions_open() -> list[bool]:
        with read_session(console_db) as s:
            return [ended is None for ended in s.scalars(select(ConsoleSession.ended_at).join(
                User, User.id == ConsoleSession.user_id).where(User.username == "po"))]

    po = sign_in(open_app(), "po")
    assert po_sessions_open() == [True]
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.selectbox(key="change_user").set_value("po").run()
    assert in_form(at, "change_role", "New role").value == "product_owner"
    audited = last_audit(console_db).seq
    at = submit(at, "change_role")
    assert not at.exception and not at.success
    assert shown(at.error) == ["po is already product_owner; nothing changed."]
    assert po_sessions_open() == [True] and last_audit(console_db).seq == audited
    assert not po.run().exception and "Agent health" in po.title[0].value


def test_no_user_is_chosen_at_first_and_the_new_role_starts_at_theirs(console_db: Engine) -> None:
    """The user box started on the first name (the admin's own) and New role on product_owner whatever the user's
    role: Disable, or Change role without a look, acted on the wrong person or role."""
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    assert at.selectbox(key="change_user").value is None
    assert not any(b.key == "do_disable" for b in at.button)
    assert "Choose a user to change their role, password or access." in shown(at.caption)
    at.selectbox(key="change_user").set_value("support").run()
    assert in_form(at, "change_role", "New role").value == "support"
    at.selectbox(key="change_user").set_value("engineer").run()
    assert in_form(at, "change_role", "New role").value == "engineer"
    assert at.button(key="do_disable").label == "Disable"


def test_a_start_date_alone_lists_everything_from_that_day_on(console_db: Engine) -> None:
    """Picking the start of the range filtered to that one day ('0 of 0 matching records') until an end was picked."""
    from datetime import date, timedelta

    at = sign_in(open_app(), "po")
    at.switch_page("../pages/audit.py").run()
    at.date_input[0].set_value((date.today() - timedelta(days=3),)).run()
    assert not at.exception and len(at.dataframe[0].value) > 0


def test_every_role_sees_in_the_sidebar_whether_the_system_runs(console_db: Engine) -> None:
    """Only Controls and `core status` said STOPPED or limited; Agent health showed pending work climbing unexplained."""
    engineer = ROLE_ACTORS["engineer"]

    def sidebar(at) -> list[str]:  # noqa: ANN001
        return [m.value for m in at.sidebar.markdown] + [c.value for c in at.sidebar.caption]

    at = sign_in(open_app(), "po")
    assert not at.exception
    assert "Agent system: :red-badge[STOPPED]" in sidebar(at)  # a new database starts with the system off
    controls.set_activation(actor=engineer, mode="limited", shops=[1, 2], reason="staging step 3",
                            uow=UnitOfWork(console_db))
    at.run()
    assert "Agent system: :orange-badge[LIMITED]" in sidebar(at) and "shops: 1, 2; agent types: all" in sidebar(at)
    controls.set_activation(actor=engineer, mode="full", reason="all shops", uow=UnitOfWork(console_db))
    at.run()
    assert "Agent system: :green-badge[RUNNING]" in sidebar(at)
    controls.engage_kill_switch(actor=engineer, reason="incident", uow=UnitOfWork(console_db))
    at.run()
    assert "Agent system: :red-badge[STOPPED]" in sidebar(at)


def test_the_live_workers_own_switch_shows_in_the_sidebar_and_on_controls(console_db: Engine) -> None:
    """A worker started with AGENT_SYSTEM_ENABLED=false starts nothing; the console read only its own environment
    and showed RUNNING."""
    from core.models import WorkerHeartbeat

    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(console_db))
    with UnitOfWork(console_db) as uow:
        uow.session.add_all([WorkerHeartbeat(id="w1", host="h", pid=1, env_enabled=False),
                             WorkerHeartbeat(id="w2", host="h", pid=2)])
        uow.commit()
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    assert not at.exception
    assert "Agent system: :green-badge[RUNNING]" in [m.value for m in at.sidebar.markdown]
    one_off = "1 of 2 live workers run with AGENT\\_SYSTEM\\_ENABLED=false: those start nothing."
    assert one_off in [c.value for c in at.sidebar.caption]
    assert [w.value for w in at.warning] == ["1 of 2 live workers run with AGENT_SYSTEM_ENABLED=false: "
                                             "those start nothing."]
    with UnitOfWork(console_db) as uow:
        uow.session.get(WorkerHeartbeat, "w2").env_enabled = False
        uow.commit()
    at.run()
    assert "Agent system: :red-badge[STOPPED]" in [m.value for m in at.sidebar.markdown]
    assert any(m.value.startswith(":red-background[**STOPPED**] mode **full**") for m in at.markdown)
    assert [w.value for w in at.warning] == ["Every live worker (2) runs with AGENT_SYSTEM_ENABLED=false: nothing "
                                             "starts, whatever is set here."]
    from dashboard import data

    data.health_figures.clear()  # drawn at sign-in, before w2 changed; the page keeps its figures a few seconds
    at.switch_page("../pages/health.py").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "AGENT_SYSTEM_ENABLED" in d.value.columns)
    assert dict(zip(table["worker"], table["AGENT_SYSTEM_ENABLED"])) == {"w1": False, "w2": False}
