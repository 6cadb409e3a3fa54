"""Console users through the services and the CLI."""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Engine, select

from core.auth import check_password
from core.db import read_session
from core.errors import Conflict, PermissionDenied, UserInputError
from core.models import ConsoleSession, User, utcnow
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


@pytest.mark.parametrize("kwargs, error", [
    ({"role": "wizard"}, "Unknown role"),
    ({"password": "short"}, "at least 10 characters"),
    ({"username": "Bad Name!"}, "A user name is"),
    ({"role": "support"}, "needs the shops"),
])
def test_add_user_rejects_bad_input(engine: Engine, kwargs: dict, error: str) -> None:
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
