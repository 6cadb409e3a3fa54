"""9.9 and 9.13: production's guard rails hold against the command line's own flags; pipes closed early are quiet."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.auth import system_actor
from core.cli import main
from core.config import reset_settings
from core.db import read_session
from core.models import AuditRecord, Conversation, RollbackRun
from core.queries.settings import get_activation_state
from core.services import controls, sessions, tokens, users
from core.uow import UnitOfWork
from tests.support.data import seed_minimal

PASSWORD = "a long enough password"


@pytest.fixture
def production(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A production deployment with two real engineers and an admin; returns each one's API token."""
    seed_minimal(engine)
    toks = {}
    for name, role in (("erin", "engineer"), ("eli", "engineer"), ("ada", "admin")):
        users.add_user(actor=system_actor("setup"), username=name, password=PASSWORD, role=role, uow=UnitOfWork(engine))
        toks[name] = tokens.create_token(actor=system_actor("setup"), username=name, uow=UnitOfWork(engine)).token
    controls.set_activation(actor=system_actor("setup"), mode="full", reason="live", uow=UnitOfWork(engine))
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COOKIE_KEY", "prod-cookie-secret-for-tests")
    reset_settings()
    return toks


def as_user(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    if token is None:
        monkeypatch.delenv("AGENTOPS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AGENTOPS_TOKEN", token)
    reset_settings()


def conversations(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(Conversation))


def test_the_environment_flag_cannot_lower_production(production: dict, engine: Engine,
                                                      capsys: pytest.CaptureFixture) -> None:
    before = conversations(engine)
    assert main(["--environment", "development", "db", "cleanup", "--yes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --environment development would lower") and err.count("\n") == 1
    assert conversations(engine) == before
    assert main(["rollback", "database", "request", "--confirm", "development", "--reason", "x",
                 "--environment=development"]) == 2
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RollbackRun)) == 0


def test_the_environment_flag_may_repeat_or_raise(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("COOKIE_KEY", "staging-cookie-secret-for-tests")
    reset_settings()
    assert main(["--environment", "staging", "db", "verify"]) == 0
    assert main(["--environment", "production", "config"]) == 0
    assert "production" in capsys.readouterr().out


def test_an_unproven_actor_is_refused_and_audited(production: dict, engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    assert main(["--actor", "ada", "kill", "--reason", "I am ada, trust me"]) == 3
    assert "AGENTOPS_TOKEN" in capsys.readouterr().err
    as_user(monkeypatch, production["erin"])  # someone else's token proves nothing about ada
    assert main(["--actor", "ada", "kill", "--reason", "still not ada"]) == 3
    with read_session(engine) as s:
        assert get_activation_state(s).running
        refused = s.scalars(select(AuditRecord.reason).where(AuditRecord.action == "cli.actor",
                                                             AuditRecord.outcome == "refused")).all()
    assert len(refused) == 2


def test_an_actor_proven_by_their_own_token_or_session_acts(production: dict, engine: Engine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    as_user(monkeypatch, production["ada"])
    assert main(["--actor", "ada", "agent-type", "disable", "upsell", "--reason", "proven by token"]) == 0
    signed = sessions.sign_in(username="eli", password=PASSWORD, uow=UnitOfWork(engine))
    as_user(monkeypatch, signed.token)
    assert main(["--actor", "eli", "agent-type", "enable", "upsell", "--reason", "proven by session"]) == 0
    with read_session(engine) as s:
        actors = s.scalars(select(AuditRecord.actor).where(AuditRecord.action.like("agent_type.%"))).all()
    assert actors == ["ada", "eli"]


def test_a_database_rollback_approval_never_rests_on_a_name(production: dict, engine: Engine,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    as_user(monkeypatch, production["erin"])
    assert main(["--actor", "erin", "rollback", "database", "request", "--confirm", "production",
                 "--reason", "tables slow the app"]) == 0
    with read_session(engine) as s:
        run = s.scalars(select(RollbackRun)).one()
    assert run.state == "awaiting_approval"
    assert main(["--actor", "erin", "rollback", "database", "approve", str(run.id)]) == 3  # their own request
    as_user(monkeypatch, None)
    assert main(["--actor", "eli", "rollback", "database", "approve", str(run.id)]) == 3  # a name alone
    assert main(["rollback", "database", "approve", str(run.id)]) == 3  # the shell operator (SYSTEM)
    capsys.readouterr()
    as_user(monkeypatch, production["eli"])
    assert main(["--actor", "eli", "rollback", "database", "approve", str(run.id)]) == 0
    with read_session(engine) as s:
        assert s.get(RollbackRun, run.id).approved_by == "eli"


def test_in_production_db_cleanup_does_not_go_around_the_second_engineer(production: dict, engine: Engine,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """`db cleanup --yes --confirm production` dropped every agent table on one engineer's word, where
    `rollback database` waits for a second engineer's approval (a CLI review)."""
    as_user(monkeypatch, production["erin"])
    before = conversations(engine)
    assert main(["--actor", "erin", "db", "cleanup", "--yes", "--confirm", "production"]) == 3
    assert "only by an approved database rollback" in capsys.readouterr().err
    assert conversations(engine) == before
    with read_session(engine) as s:
        refused = s.scalars(select(AuditRecord).where(AuditRecord.action == "db.cleanup")).one()
    assert (refused.actor, refused.outcome) == ("erin", "refused")


def test_development_keeps_plain_actor_names(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    users.add_user(actor=system_actor("setup"), username="dev", password=PASSWORD, role="engineer",
                   uow=UnitOfWork(engine))
    assert main(["--actor", "dev", "kill", "--reason", "drill"]) == 0


def test_output_cut_short_by_a_closed_pipe_is_not_a_traceback(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seed_minimal(engine, conversations=0)
    users.add_user(actor=system_actor("setup"), username="piper", password=PASSWORD, role="engineer",
                   uow=UnitOfWork(engine))
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already gone
    env = {"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "AUDIT_KEY": os.environ["AUDIT_KEY"]}
    try:
        proc = subprocess.run([sys.executable, "-m", "core", "tokens", "create", "--user", "piper"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 1 and proc.stderr == ""
    shell = subprocess.run(f"{sys.executable} -m core tokens create --user piper | head -1", shell=True,
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert shell.stdout.startswith("bbat_") and shell.stderr == ""


def test_no_test_data_goes_into_production(production: dict, engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    """`seed --test-data minimal` wrote made-up shops, clients and conversations into production (a CLI review)."""
    as_user(monkeypatch, production["ada"])
    before = conversations(engine)
    assert main(["--actor", "ada", "seed", "--test-data", "minimal"]) == 2
    assert capsys.readouterr().err == "error: Test data is for development and staging; nothing was written to " \
                                      "production.\n"
    assert conversations(engine) == before
