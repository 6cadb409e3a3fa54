"""Console users through the services and the CLI."""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Engine, select

from core.auth import check_password
from core.db import read_session
from core.errors import Conflict, PermissionDenied, UserInputError
from core.models import AuditRecord, ConsoleSession, User, utcnow
from core.services import users
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal


def test_add_user_through_cli_with_password_on_stdin(engine: Engine, db_url: str) -> None:
    seed_minimal(engine, conversations=0)
    env = {"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "BCRYPT_ROUNDS": "4"}
    proc = subprocess.run([sys.executable, "-m", "core", "users", "add", "sasha", "--role", "support", "--shops", "1,2"],
                          input="correct horse battery\n", capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with read_session(engine) as s:
        user = s.scalars(select(User).where(User.username == "sasha")).one()
        assert user.role == "support" and check_password("correct horse battery", user.password_hash)
        assert "correct horse" not in user.password_hash


def test_an_unknown_enterprise_is_one_sentence_without_the_password_hash(engine: Engine, db_url: str) -> None:
    """A foreign-key failure printed a traceback with the new user's bcrypt hash among its parameters."""
    seed_minimal(engine, conversations=0)
    env = {"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "BCRYPT_ROUNDS": "4"}
    proc = subprocess.run([sys.executable, "-m", "core", "users", "add", "x4", "--role", "enterprise_owner",
                           "--enterprise", "99999"], input="longenoughpassword123\n", capture_output=True, text=True,
                          env=env, timeout=60)
    assert (proc.returncode, proc.stderr.strip()) == (2, "error: No enterprise with id 99999."), proc.stderr
    assert "$2b$" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("kwargs, error", [
    ({"role": "wizard"}, "Unknown role"),
    ({"password": "short"}, "at least 10 characters"),
    ({"username": "Bad Name!"}, "A user name is"),
    ({"role": "support"}, "needs the shops"),
    ({"role": "engineer", "shops": [1]}, r"An engineer sees every shop; shops are for support users and shop "
                                         r"owners \(got 1\)\."),
    ({"role": "product_owner", "shops": [1, 2]}, r"A product_owner sees every shop"),
    ({"role": "enterprise_owner", "shops": [1]}, r"An enterprise_owner sees the shops of their enterprise"),
    ({"role": "enterprise_owner"}, r"An enterprise_owner needs their enterprise, such as --enterprise 1\."),
    ({"role": "enterprise_owner", "enterprise_id": 99999}, r"No enterprise with id 99999\."),
    ({"role": "engineer", "enterprise_id": 1}, r"Only an enterprise owner belongs to an enterprise"),
])
def test_add_user_rejects_bad_input(engine: Engine, kwargs: dict, error: str) -> None:
    seed_minimal(engine, conversations=0)  # enterprise 1 exists
    args = {"username": "newbie", "password": "long enough pw", "role": "engineer", **kwargs}
    with pytest.raises(UserInputError, match=error):
        users.add_user(actor=ROLE_ACTORS["admin"], uow=UnitOfWork(engine), **args)


def test_only_admins_manage_users(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        users.add_user(actor=ROLE_ACTORS["engineer"], username="x1", password="long enough pw", role="engineer",
                       uow=UnitOfWork(engine))
    users.add_user(actor=ROLE_ACTORS["admin"], username="x1", password="long enough pw", role="engineer",
                   uow=UnitOfWork(engine))
    with pytest.raises(Conflict):
        users.add_user(actor=ROLE_ACTORS["admin"], username="x1", password="long enough pw", role="engineer",
                       uow=UnitOfWork(engine))


@pytest.mark.parametrize("change", ["password", "disable", "role"])
def test_credential_changes_end_open_sessions(engine: Engine, change: str) -> None:
    user = users.add_user(actor=ROLE_ACTORS["admin"], username="ed", password="long enough pw", role="engineer",
                          uow=UnitOfWork(engine))
    with UnitOfWork(engine) as uow:
        uow.session.add(ConsoleSession(id="s" * 64, user_id=user.id, role_at_start="engineer", expires_at=utcnow()))
        uow.commit()
    uow = UnitOfWork(engine)
    if change == "password":
        users.set_password(actor=ROLE_ACTORS["admin"], username="ed", password="another long pw", uow=uow)
    elif change == "disable":
        users.set_disabled(actor=ROLE_ACTORS["admin"], username="ed", disabled=True, uow=uow)
    else:
        users.set_role(actor=ROLE_ACTORS["admin"], username="ed", role="product_owner", uow=uow)
    with read_session(engine) as s:
        assert s.get(ConsoleSession, "s" * 64).ended_at is not None


def test_disabling_a_user_revokes_their_api_tokens_for_good(engine: Engine) -> None:
    """The API and CLI attack: a disabled user's tokens were only refused while disabled; enabling the user again
    brought every old token back."""
    from core.services import tokens

    admin = ROLE_ACTORS["admin"]
    users.add_user(actor=admin, username="ed", password="long enough pw", role="engineer", uow=UnitOfWork(engine))
    token = tokens.create_token(actor=admin, username="ed", uow=UnitOfWork(engine)).token
    assert tokens.use_token(engine=engine, token=token) is not None
    users.set_disabled(actor=admin, username="ed", disabled=True, uow=UnitOfWork(engine))
    users.set_disabled(actor=admin, username="ed", disabled=False, uow=UnitOfWork(engine))
    assert tokens.use_token(engine=engine, token=token) is None
    with read_session(engine) as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.action == "user.disable")).one()
    assert record.after == {"sessions_ended": 0, "tokens_revoked": 1}


@pytest.fixture
def sqlite_engine(sqlite_template, tmp_path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    """SQLite only: what is measured is SQLite's write lock (PostgreSQL readers never wait for writers)."""
    import shutil

    from tests.conftest import _use_database

    path = tmp_path / "locks.db"
    shutil.copy(sqlite_template, path)
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    return _use_database(monkeypatch, f"sqlite:///{path}")


def test_reads_do_not_take_the_write_lock(sqlite_engine: Engine) -> None:
    """list_tokens, list_runs and resume_session answer while another process holds SQLite's write lock."""
    import sqlite3
    import time

    from core.services import rollbacks, sessions, tokens

    engine = sqlite_engine
    seed_minimal(engine, conversations=0)
    users.add_user(actor=ROLE_ACTORS["admin"], username="reader", password="long enough pw", role="engineer",
                   uow=UnitOfWork(engine))
    signed = sessions.sign_in(username="reader", password="long enough pw", uow=UnitOfWork(engine))
    reads = {
        "list_tokens": lambda: tokens.list_tokens(actor=ROLE_ACTORS["admin"], uow=UnitOfWork(engine)),
        "list_runs": lambda: rollbacks.list_runs(actor=ROLE_ACTORS["engineer"], uow=UnitOfWork(engine)),
        "resume_session": lambda: sessions.resume_session(token=signed.token, uow=UnitOfWork(engine)),
    }
    writer = sqlite3.connect(engine.url.database, timeout=1)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        took = {}
        for name, read in reads.items():
            started = time.perf_counter()
            result = read()
            took[name] = time.perf_counter() - started
            assert result is not None
    finally:
        writer.rollback()
        writer.close()
    assert all(t < 1.0 for t in took.values()), took


def test_cli_users_list_goes_through_the_read_with_its_permission(engine: Engine, capsys) -> None:  # noqa: ANN001
    from core.cli import main

    users.add_user(actor=ROLE_ACTORS["admin"], username="ed", password="long enough pw", role="engineer",
                   uow=UnitOfWork(engine))
    assert main(["users", "list"]) == 0
    assert "ed" in capsys.readouterr().out
    assert main(["--actor", "ed", "users", "list"]) == 3
    with read_session(engine) as s:
        from core.models import AuditRecord

        rec = s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()
    assert (rec.actor, rec.action, rec.outcome) == ("ed", "user.list", "refused")


def test_a_role_without_shops_keeps_none(engine: Engine) -> None:
    """The walkthrough's finding: shops typed for an engineer were stored (and listed) though the role sees every
    shop; and a support user made engineer kept their old shops on the list."""
    seed_minimal(engine, conversations=0)
    users.add_user(actor=ROLE_ACTORS["admin"], username="sam", password="long enough pw", role="support", shops=[1],
                   uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="sees every shop"):
        users.set_role(actor=ROLE_ACTORS["admin"], username="sam", role="engineer", shops=[1], uow=UnitOfWork(engine))
    users.set_role(actor=ROLE_ACTORS["admin"], username="sam", role="engineer", uow=UnitOfWork(engine))
    from core.queries.users import list_users

    with read_session(engine) as s:
        [sam] = [u for u in list_users(s, actor=ROLE_ACTORS["admin"]) if u["user"] == "sam"]
    assert (sam["role"], list(sam["shops"])) == ("engineer", [])


def test_an_unexpected_database_error_does_not_carry_the_statements_values(engine: Engine) -> None:
    """Defence in depth for the traceback above: whatever else fails, the error's text names no value."""
    from sqlalchemy.exc import IntegrityError

    from core.db import get_engine

    seed_minimal(engine, conversations=0)
    with pytest.raises(IntegrityError) as err, get_engine().begin() as conn:
        conn.execute(User.__table__.insert().values(username="x", name="x", role="engineer",
                                                    password_hash="$2b$12$secret-hash-value", enterprise_id=99999))
    assert "secret-hash-value" not in str(err.value) and "hidden due to hide_parameters" in str(err.value)


def test_an_unknown_role_is_said_before_the_password_is_asked_for(engine: Engine, db_url: str) -> None:
    env = {"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "core", "users", "add", "bob", "--role", "wizard"], input="",
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: Unknown role 'wizard'"), proc.stderr


def test_an_admin_cannot_disable_or_demote_themself(engine: Engine) -> None:
    """The Chromium walkthrough: the user box started on the first name ('admin'), and one click on Disable signed
    that admin out for good (another admin existed, so nothing refused it)."""
    admin = ROLE_ACTORS["admin"]
    for name in (admin.username, "second"):
        users.add_user(actor=admin, username=name, password="long enough pw", role="admin", uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="^You cannot disable yourself; another admin can.$"):
        users.set_disabled(actor=admin, username=admin.username, disabled=True, uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="^You cannot change the role of yourself; another admin can.$"):
        users.set_role(actor=admin, username=admin.username, role="engineer", uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match=f"^{admin.username} is already admin; nothing changed.$"):
        users.set_role(actor=admin, username=admin.username, role="admin", uow=UnitOfWork(engine))  # yours too
    with read_session(engine) as s:
        me = s.scalars(select(User).where(User.username == admin.username)).one()
    assert (me.role, me.disabled) == ("admin", False)
    users.set_disabled(actor=admin, username="second", disabled=True, uow=UnitOfWork(engine))  # someone else: fine


def test_a_role_change_over_someone_elses_is_refused(engine: Engine) -> None:
    """Two admins on one user: the later change, made from a form that showed the earlier role, silently won."""
    admin = ROLE_ACTORS["admin"]
    seed_minimal(engine, conversations=0)
    users.add_user(actor=admin, username="dana", password="long enough pw", role="engineer", uow=UnitOfWork(engine))
    users.set_role(actor=admin, username="dana", role="support", shops=[1], uow=UnitOfWork(engine),
                   expected_role="engineer")
    with pytest.raises(Conflict, match="^dana became support \\(was engineer\\) since you opened the form; nothing"):
        users.set_role(actor=admin, username="dana", role="product_owner", uow=UnitOfWork(engine),
                       expected_role="engineer")
    with read_session(engine) as s:
        assert s.scalars(select(User.role).where(User.username == "dana")).one() == "support"


def _sessions_and_audit(engine: Engine, user_id: int) -> tuple[list, int]:
    with read_session(engine) as s:
        ended = s.scalars(select(ConsoleSession.ended_at).where(ConsoleSession.user_id == user_id)).all()
        return ended, len(s.scalars(select(AuditRecord.seq)).all())


def test_choosing_the_role_and_shops_a_user_has_changes_nothing(engine: Engine) -> None:
    """The walkthrough: setting walker (product_owner) to product_owner said 'walker is now product_owner; their
    sessions have ended.', signed walker's open tab out and audited a role change that did not happen."""
    admin = ROLE_ACTORS["admin"]
    seed_minimal(engine, conversations=0)
    walker = users.add_user(actor=admin, username="walker", password="long enough pw", role="product_owner",
                            uow=UnitOfWork(engine))
    sam = users.add_user(actor=admin, username="sam", password="long enough pw", role="support", shops=[2, 1],
                         uow=UnitOfWork(engine))
    with UnitOfWork(engine) as uow:
        for user in (walker, sam):
            uow.session.add(ConsoleSession(id=f"{user.username:x<64}", user_id=user.id, role_at_start=user.role,
                                           expires_at=utcnow()))
        uow.commit()
    before = {u.id: _sessions_and_audit(engine, u.id) for u in (walker, sam)}
    with pytest.raises(UserInputError, match="^walker is already product_owner; nothing changed.$"):
        users.set_role(actor=admin, username="walker", role="product_owner", uow=UnitOfWork(engine),
                       expected_role="product_owner")
    for shops in (None, [1, 2], [2, 1, 1]):  # None keeps the shops they have
        with pytest.raises(UserInputError, match="^sam is already support \\(shops 1, 2\\); nothing changed.$"):
            users.set_role(actor=admin, username="sam", role="support", shops=shops, uow=UnitOfWork(engine))
    assert {u.id: _sessions_and_audit(engine, u.id) for u in (walker, sam)} == before
    assert before[sam.id][0] == [None]  # the session is still open
    users.set_role(actor=admin, username="sam", role="support", shops=[1], uow=UnitOfWork(engine))  # shops differ
    assert _sessions_and_audit(engine, sam.id)[0] != [None]


def second_admin_adds(engine: Engine, username: str) -> None:
    """What a second admin's add_user does when it passed its own check for the name just before the first one
    committed: the insert meets the unique name (the race's end, made deterministic)."""
    with UnitOfWork(engine) as uow:
        uow.session.add(User(username=username, name=username, role="engineer", password_hash="x"))
        uow.commit()


def test_a_change_that_lost_a_race_is_a_conflict_in_one_sentence(engine: Engine) -> None:
    """An IntegrityError left every surface raw: the console showed Streamlit's exception box."""
    seed_minimal(engine, conversations=0)
    users.add_user(actor=ROLE_ACTORS["admin"], username="rosa", password="long enough pw", role="engineer",
                   uow=UnitOfWork(engine))
    with pytest.raises(Conflict) as err:
        second_admin_adds(engine, "rosa")
    assert str(err.value).startswith("The database refused the change, and nothing was saved (") and str(
        err.value).endswith("): someone else may have changed the same thing at the same moment; reload and try "
                            "again.")
    with read_session(engine) as s:
        assert s.scalars(select(User.username).where(User.username == "rosa")).all() == ["rosa"]
