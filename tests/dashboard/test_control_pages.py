"""Controls, Rollbacks and Audit pages through the real entrypoint: allowed or refused as the role table says."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from core.auth import Role
from core.db import read_session
from core.models import AuditRecord
from core.queries.settings import get_activation_state
from core.services import controls
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from dashboard.navigation import PAGES
from tests.dashboard.conftest import body_text, open_app, sign_in
from tests.support.data import ROLE_ACTORS

PAGE_ROLES = {  # the design's role table, for the console's pages
    "Agent health": {"po", "support", "engineer", "admin"},
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
    assert not [b for b in at.button if b.key == "trigger_rollback"]
    assert trigger_row(at, "Unauthorized")["now"] == "0.0"
    record_refusal(actor=ROLE_ACTORS["support"], action="conversation.read", target="conversation 9",
                   reason="shop 2 is not assigned", uow=UnitOfWork(console_db))
    at.run()
    assert "Rollback trigger fired: Unauthorized data access attempts (24 h) = 1.0" in body_text(at)
    assert trigger_row(at, "Unauthorized")["detail"] == "sam: conversation.read conversation 9"


def test_engineer_turns_the_system_off_with_a_reason(console_db: Engine) -> None:
    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(console_db))
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    assert "RUNNING" in body_text(at)
    at.button(key="kill_open").click().run()
    assert "conversations in flight will finish" in body_text(at)
    # In the browser the dialog reruns on its own; AppTest reruns the page, so the dialog's opener is clicked again.
    at.text_input(key="kill_reason").input("replies are off-brand")
    at.button(key="kill_open").click().run()
    next(b for b in at.button if b.label == "Turn off now").click()
    at.button(key="kill_open").click().run()
    assert not at.exception
    with read_session(console_db) as s:
        state = get_activation_state(s)
    assert state.mode == "off" and state.changed_by == "engineer"
    rec = last_audit(console_db)
    assert (rec.action, rec.source, rec.reason) == ("kill_switch.engage", "console", "replies are off-brand")
    assert "workers acknowledged version" in body_text(at) or "No worker is running" in body_text(at)


def test_activation_form_sets_limited_scope(console_db: Engine) -> None:
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/controls.py").run()
    at.radio[0].set_value("limited")
    at.multiselect[0].set_value([1])
    at.text_input[0].input("staging step 3")
    next(b for b in at.button if b.label == "Apply").click().run()
    assert not at.exception
    with read_session(console_db) as s:
        state = get_activation_state(s)
    assert (state.mode, state.allowed_shops) == ("limited", (1,))


def test_audit_page_filters_and_exports(console_db: Engine) -> None:
    at = sign_in(open_app(), "po")
    at.switch_page("../pages/audit.py").run()
    assert not at.exception
    assert "matching records" in body_text(at)
    at.selectbox[0].set_value("sign_in").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["action"]) == {"sign_in"} and "po" in set(table["actor"])


def test_database_rollback_from_the_page_and_restore(console_db: Engine, tmp_path) -> None:
    from sqlalchemy import func, inspect

    from core.cli import main
    from core.models import Client, Shop

    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/rollbacks.py").run()
    assert "agent_conversations" in set(at.dataframe[0].value["agent table"])
    at.text_input(key="db_confirm").input("development")
    at.text_input(key="db_reason").input("drill on the demo database").run()
    at.button(key="db_request").click().run()
    assert not at.exception
    assert any("approved" in s.value for s in at.success)
    run_button = next(b for b in at.button if b.key and b.key.startswith("run_"))
    run_button.click().run()
    assert not at.exception
    done = next(s.value for s in at.success if "Restore with" in s.value)
    assert "agent_conversations" not in inspect(console_db).get_table_names()
    with read_session(console_db) as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == 2
        assert s.scalar(select(func.count()).select_from(Client)) == 24
    backup = done.split("backup ")[1].split(".jsonl.gz")[0] + ".jsonl.gz"
    assert main(["db", "restore", backup]) == 0
    assert main(["db", "verify"]) == 0
    runs = at.dataframe[-1].value
    assert (runs["kind"].iloc[0], runs["state"].iloc[0], runs["by"].iloc[0]) == ("database", "done", "engineer")


def test_admin_adds_a_user_and_issues_a_token(console_db: Engine) -> None:
    from core.models import ApiToken, User

    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.text_input[0].input("rosa")
    at.text_input[1].input("Rosa Diaz")
    at.selectbox[0].set_value("engineer")
    at.text_input[3].input("a long enough password")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.exception
    with read_session(console_db) as s:
        assert s.scalars(select(User.role).where(User.username == "rosa")).one() == "engineer"
    at.selectbox(key="token_user").set_value("rosa")
    at.button(key="do_token").click().run()
    token = at.code[0].value
    assert token.startswith("bbat_")
    with read_session(console_db) as s:
        assert token not in set(s.scalars(select(ApiToken.token_hash)))
    assert last_audit(console_db).action == "token.create"


def test_a_too_short_password_is_one_sentence_not_a_success(console_db: Engine) -> None:
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    at.selectbox(key="change_user").set_value("po")
    at.text_input(key="change_pw").input("short")
    at.button(key="do_pw").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The password must have at least 10 characters."]
    assert not [s for s in at.success if "changed" in s.value]
