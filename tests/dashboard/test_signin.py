"""Sign-in, roles and navigation, through the real entrypoint."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from core.db import read_session
from core.models import AuditRecord
from core.services import users
from core.uow import UnitOfWork
from tests.dashboard.conftest import body_text, open_app, reloaded_with_cookie_of, sign_in
from tests.support.data import ROLE_ACTORS

EXPECTED_PAGES = {
    "po": ["Agent health"],
    "support": ["Agent health"],
    "engineer": ["Agent health"],
    "admin": ["Agent health"],
}


@pytest.mark.parametrize("username", sorted(EXPECTED_PAGES))
def test_each_role_signs_in_and_sees_its_identity(console_db: Engine, username: str) -> None:
    at = sign_in(open_app(), username)
    assert not at.exception
    sidebar = "\n".join(t.value for t in at.sidebar.text)
    assert f"({username})" in sidebar
    assert "DEVELOPMENT" in "\n".join(m.value for m in at.sidebar.markdown)
    assert "Agent health" in [t.value for t in at.title]


def test_wrong_password_is_refused_and_audited(console_db: Engine) -> None:
    at = sign_in(open_app(), "engineer", "not the password")
    assert not at.exception
    assert "Those credentials did not work." in [e.value for e in at.error]
    with read_session(console_db) as s:
        rec = s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()
    assert (rec.action, rec.outcome, rec.target, rec.reason) == ("sign_in", "refused", "engineer", "wrong password")


@pytest.mark.parametrize("username, password", [("", ""), ("engineer", ""), ("  ", "engineer-demo-pass")])
def test_an_empty_field_asks_for_it_and_counts_no_failure(console_db: Engine, username: str, password: str) -> None:
    """An empty form said "Those credentials did not work." and counted a failed sign-in towards the lockout."""
    with read_session(console_db) as s:
        before = s.scalars(select(AuditRecord.seq).order_by(AuditRecord.seq.desc()).limit(1)).first()
    at = sign_in(open_app(), username, password)
    assert not at.exception and [e.value for e in at.error] == ["Enter your user name and password."]
    with read_session(console_db) as s:
        assert s.scalars(select(AuditRecord.seq).order_by(AuditRecord.seq.desc()).limit(1)).first() == before


def test_unknown_user_gets_the_same_answer(console_db: Engine) -> None:
    at = sign_in(open_app(), "nobody", "whatever-password")
    assert [e.value for e in at.error] == ["Those credentials did not work."]


def test_sixth_failure_in_fifteen_minutes_is_throttled(console_db: Engine) -> None:
    for _ in range(5):
        sign_in(open_app(), "engineer", "wrong")
    at = sign_in(open_app(), "engineer")  # even the right password
    assert "Too many failed sign-ins" in at.error[0].value
    assert "Agent health" not in [t.value for t in at.title]


def test_sign_out_ends_the_session(console_db: Engine) -> None:
    at = sign_in(open_app(), "engineer")
    token = at.session_state["agentops_session"]
    at.sidebar.button[0].click()
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]
    from core.services.sessions import resume_session

    assert resume_session(token=token, uow=UnitOfWork(console_db)) is None


def test_disabling_a_user_ends_their_session_at_the_next_rerun(console_db: Engine) -> None:
    at = sign_in(open_app(), "engineer")
    assert "Agent health" in [t.value for t in at.title]
    users.set_disabled(actor=ROLE_ACTORS["admin"], username="engineer", disabled=True, uow=UnitOfWork(console_db))
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]


ENDED = ("Your session has ended: you signed out elsewhere, it expired, or an admin changed your role, password or "
         "access. Sign in again to go on.")


def test_role_change_ends_the_session_and_the_form_says_why(console_db: Engine) -> None:
    """A demoted user's next click showed only the sign-in form, without a word."""
    at = sign_in(open_app(), "support")
    users.set_role(actor=ROLE_ACTORS["admin"], username="support", role="product_owner", uow=UnitOfWork(console_db))
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]
    assert [i.value for i in at.info if i.value.startswith("Your session")] == [ENDED]
    sign_in(at, "engineer")  # someone signs in again: the sentence goes
    assert not at.exception and not [i for i in at.info if i.value.startswith("Your session")]


def test_signing_out_is_not_called_an_ended_session(console_db: Engine) -> None:
    at = sign_in(open_app(), "engineer")
    at.sidebar.button[0].click()
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]
    assert not [i for i in at.info if i.value.startswith("Your session")]


def test_signing_out_after_a_reload_is_not_called_an_ended_session(console_db: Engine, monkeypatch) -> None:
    """After F5 (or a page opened by URL) a click on Sign out said the session had ended elsewhere."""
    at = reloaded_with_cookie_of(sign_in(open_app(), "engineer"), monkeypatch)
    assert "Agent health" in [t.value for t in at.title]  # resumed from the cookie
    at.sidebar.button(key="sign_out").click().run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert not [i for i in at.info if i.value.startswith("Your session")]
    at.run()  # and the next run, with the same old cookie, is still the plain form
    assert [b.label for b in at.button] == ["Sign in"]
    assert not [i for i in at.info if i.value.startswith("Your session")]


def test_a_session_ended_elsewhere_after_a_reload_still_says_so(console_db: Engine, monkeypatch) -> None:
    """Another tab's sign-out, with the same cookie, still ends this tab's session with the sentence that says why."""
    first = sign_in(open_app(), "engineer")
    at = reloaded_with_cookie_of(first, monkeypatch)
    first.sidebar.button(key="sign_out").click().run()  # the other tab
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]
    assert [i.value for i in at.info if i.value.startswith("Your session")] == [ENDED]


def test_demo_users_cannot_sign_in_outside_development(console_db: Engine, monkeypatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("COOKIE_KEY", "a-real-staging-secret-value")
    from core.config import reset_settings

    reset_settings()
    at = sign_in(open_app(), "engineer")
    assert [e.value for e in at.error] == ["Those credentials did not work."]
    assert "STAGING" not in body_text(at)


def test_example_cookie_key_stops_the_console_in_production(console_db: Engine, monkeypatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    from core.config import reset_settings

    reset_settings()
    at = open_app()
    assert not at.exception
    assert "COOKIE_KEY: the example key is refused" in at.error[0].value
    assert not at.text_input


def test_database_down_before_sign_in_is_a_banner(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    from core.config import reset_settings
    from core.db import dispose_engines

    reset_settings()
    dispose_engines()
    at = open_app()
    at.session_state["agentops_session"] = "some-token"
    at.run()
    assert not at.exception
    assert "The database cannot be reached" in at.error[0].value
