"""The checklist's rollbacks through the services and the CLI, with real worker processes for propagation."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select

from core.auth import Actor, Role, system_actor
from core.cli import main
from core.db import read_session
from core.errors import Conflict, PermissionDenied, UserInputError
from core.models import Client, Shop
from core.queries.controls import evaluate_rollback_triggers
from core.queries.settings import get_activation_state
from core.services import controls, rollbacks
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from tests.integration.test_worker_faults import spawn_worker
from tests.support.data import ROLE_ACTORS, seed_minimal
from tests.support.workers import wait_for

ENGINEER, ADMIN = ROLE_ACTORS["engineer"], ROLE_ACTORS["admin"]
SECOND = Actor(username="eli", role=Role.ENGINEER, source="test")  # a second engineer


@pytest.mark.parametrize("role", ["product_owner", "support", "shop_owner", "enterprise_owner"])
def test_only_engineers_and_admins_roll_back(engine: Engine, role: str) -> None:
    with pytest.raises(PermissionDenied):
        rollbacks.start_immediate_rollback(actor=ROLE_ACTORS[role], reason="x", uow=UnitOfWork(engine))
    with pytest.raises(PermissionDenied):
        rollbacks.request_database_rollback(actor=ROLE_ACTORS[role], reason="x", typed_environment="development",
                                            uow=UnitOfWork(engine))


def test_immediate_rollback_measures_every_worker_acknowledging(engine: Engine, db_url: str, fake_openai,
                                                                tmp_path: Path) -> None:
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ADMIN, mode="full", reason="go", uow=UnitOfWork(engine))
    workers = [spawn_worker(db_url, fake_openai.base_url, tmp_path, f"w{i}") for i in range(2)]
    try:
        from core.queries.health import list_workers

        def alive() -> int:
            with read_session(engine) as s:
                return sum(1 for w in list_workers(s, actor=ADMIN) if w["alive"] and w["settings_version"] >= 2)

        wait_for(lambda: alive() == 2, what="two workers reporting")
        run = rollbacks.start_immediate_rollback(actor=ENGINEER, reason="bad replies", uow=UnitOfWork(engine))
        result: list = []
        wait_for(lambda: result.append(rollbacks.check_immediate_rollback(actor=ENGINEER, run_id=run.id,
                                                                          uow=UnitOfWork(engine)))
                 or result[-1][0].state == "done", what="both acknowledgements")
        done, sentence = result[-1]
        assert sentence.startswith("2 of 2 workers acknowledged version 3 in ")
        assert 0 <= done.duration_s < 5 and done.duration_s < done.target_s
    finally:
        for w in workers:
            w.terminate()
            w.wait(timeout=20)


def test_database_rollback_in_production_needs_a_second_engineer(engine: Engine, monkeypatch,
                                                                 tmp_path: Path) -> None:
    seed_minimal(engine)
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COOKIE_KEY", "prod-secret-for-the-test")
    from core.config import reset_settings

    reset_settings()
    with pytest.raises(UserInputError, match="Type the environment name"):
        rollbacks.request_database_rollback(actor=ENGINEER, reason="r", typed_environment="staging", uow=UnitOfWork(engine))
    run = rollbacks.request_database_rollback(actor=ENGINEER, reason="tables slow the app", typed_environment="production",
                                              uow=UnitOfWork(engine))
    assert run.state == "awaiting_approval"
    with pytest.raises(PermissionDenied, match="second engineer"):
        rollbacks.approve_database_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine))
    with pytest.raises(Conflict, match="must be approved"):
        rollbacks.execute_database_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine))
    rollbacks.approve_database_rollback(actor=ADMIN, run_id=run.id, uow=UnitOfWork(engine))
    # A second approval (another engineer's click from a page drawn before) says who approved it.
    with pytest.raises(Conflict, match=f"Run {run.id} is approved by {ADMIN.username}, not awaiting approval."):
        rollbacks.approve_database_rollback(actor=SECOND, run_id=run.id, uow=UnitOfWork(engine))
    with read_session(engine) as s:
        shops, clients = s.scalar(select(func.count()).select_from(Shop)), s.scalar(select(func.count()).select_from(Client))
    done = rollbacks.execute_database_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine), backup_dir=tmp_path)
    assert done.state == "done" and done.details["rows"]["agent_conversations"] == 60
    assert "agent_conversations" not in inspect(engine).get_table_names()
    with pytest.raises(Conflict, match=f"^Run {run.id} has already run \\(done\\); request a new database rollback"):
        rollbacks.execute_database_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine), backup_dir=tmp_path)
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Shop)) == shops
        assert s.scalar(select(func.count()).select_from(Client)) == clients
    assert main(["db", "restore", done.details["backup"]]) == 0
    assert main(["audit", "verify"]) == 0


def test_a_database_rollback_approved_in_development_does_not_run_in_production(engine: Engine, monkeypatch,
                                                                               tmp_path: Path) -> None:
    """A development request approves itself; run with ENVIRONMENT=production it dropped the tables with no second
    engineer."""
    from core.config import reset_settings

    seed_minimal(engine)
    run = rollbacks.request_database_rollback(actor=ENGINEER, reason="x", typed_environment="development",
                                              uow=UnitOfWork(engine))
    assert run.state == "approved"
    with pytest.raises(Conflict, match=f"Database rollback run {run.id} is already approved; run it first."):
        rollbacks.request_database_rollback(actor=ENGINEER, reason="again", typed_environment="development",
                                            uow=UnitOfWork(engine))
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COOKIE_KEY", "prod-secret-for-the-test")
    reset_settings()
    with pytest.raises(Conflict, match=f"Run {run.id} was requested for development; this is production"):
        rollbacks.execute_database_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine), backup_dir=tmp_path)
    assert "agent_conversations" in inspect(engine).get_table_names()


def test_full_rollback_calls_the_hook_and_records_releases(engine: Engine, monkeypatch) -> None:
    calls: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps({"release": "r41"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with pytest.raises(UserInputError, match="No deploy hook"):
        rollbacks.run_full_rollback(actor=ENGINEER, reason="r", uow=UnitOfWork(engine))
    # Someone who may not roll back is refused and audited first, hook or not (they were told to configure one).
    with pytest.raises(PermissionDenied):
        rollbacks.run_full_rollback(actor=ROLE_ACTORS["product_owner"], reason="r", uow=UnitOfWork(engine))
    monkeypatch.setenv("DEPLOY_HOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/rollback")
    monkeypatch.setenv("RELEASE_ID", "r42")
    from core.config import reset_settings

    reset_settings()
    assert "HTTP POST" in rollbacks.describe_deploy_hook() and "r42" in rollbacks.describe_deploy_hook()
    run = rollbacks.run_full_rollback(actor=ENGINEER, reason="release r42 breaks rebooking", uow=UnitOfWork(engine))
    server.shutdown()
    assert run.state == "done" and run.details["to_release"] == "r41" and run.details["from_release"] == "r42"
    assert calls == [{"action": "rollback", "from_release": "r42", "requested_by": "erin",
                      "reason": "release r42 breaks rebooking"}]


def test_unauthorized_access_fires_the_rollback_trigger(engine: Engine) -> None:
    with read_session(engine) as s:
        assert not any(t.fired for t in evaluate_rollback_triggers(s, actor=ENGINEER))
    record_refusal(actor=ROLE_ACTORS["support"], action="conversation.read", target="conversation 9",
                   reason="shop 2", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        fired = {t.key: t for t in evaluate_rollback_triggers(s, actor=ENGINEER) if t.fired}
    assert set(fired) == {"unauthorized"} and "sam: conversation.read conversation 9" in fired["unauthorized"].detail


def test_cli_immediate_rollback_without_workers(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=system_actor("t"), mode="full", reason="go", uow=UnitOfWork(engine))
    assert main(["rollback", "immediate", "--reason", "drill", "--wait", "5"]) == 0
    out = capsys.readouterr().out
    assert "No worker is running" in out and "immediate: done" in out
    assert main(["rollback", "full", "--reason", "x"]) == 2


def test_immediate_rollback_of_a_system_already_off_says_so(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    from core.models import AuditRecord

    seed_minimal(engine, conversations=0)  # the minimal seed leaves the switch off, at settings version 1
    run = rollbacks.start_immediate_rollback(actor=ENGINEER, reason="drill", uow=UnitOfWork(engine))
    assert (run.state, run.duration_s) == ("already_off", 0)
    assert run.outcome == "The agent system was already off (settings version 1); nothing was stopped."
    assert run.finished_at == run.started_at
    with read_session(engine) as s:
        records = s.scalars(select(AuditRecord).where(AuditRecord.action.like("rollback.immediate%"))).all()
        engaged = s.scalars(select(AuditRecord).where(AuditRecord.action == "kill_switch.engage")).all()
        assert get_activation_state(s).version == 1
    assert [(r.action, r.after["state"]) for r in records] == [("rollback.immediate.start", "already_off")]
    assert engaged == []
    assert main(["rollback", "immediate", "--reason", "again", "--wait", "5"]) == 0
    out = capsys.readouterr().out
    assert "already off" in out and "waiting for workers" not in out


def test_full_rollback_runs_the_deploy_hook_command(engine: Engine, monkeypatch, tmp_path: Path) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text('#!/bin/sh\necho "called with $*" > "$(dirname "$0")/called"\necho "release r41"\n')
    script.chmod(0o755)
    monkeypatch.setenv("DEPLOY_HOOK_COMMAND", f"{script} --env staging")
    from core.config import reset_settings

    reset_settings()
    assert rollbacks.describe_deploy_hook() == f"command: {script} --env staging --rollback"
    run = rollbacks.run_full_rollback(actor=ENGINEER, reason="bad release", uow=UnitOfWork(engine))
    assert run.state == "done" and run.outcome.startswith("exit 0 after ") and run.outcome.endswith(": release r41")
    assert (tmp_path / "called").read_text().strip() == "called with --env staging --rollback"
    monkeypatch.setenv("DEPLOY_HOOK_COMMAND", "/bin/false")
    reset_settings()
    failed = rollbacks.run_full_rollback(actor=ENGINEER, reason="bad release", uow=UnitOfWork(engine))
    assert failed.state == "failed" and failed.outcome.startswith("exit 1 after ")


def test_the_hook_typed_as_the_checklist_has_it_and_its_error_are_kept(engine: Engine, monkeypatch,
                                                                       tmp_path: Path) -> None:
    """A CLI review: `deploy-staging.sh --rollback`, typed as the checklist has it, was called with --rollback twice,
    and a failing hook's stderr was thrown away ('exit 7 after 0.0 s: ')."""
    from core.config import reset_settings

    script = tmp_path / "deploy-staging.sh"
    script.write_text('#!/bin/sh\necho "called with $*" > "$(dirname "$0")/called"\necho "r41 not found" >&2\nexit 7\n')
    script.chmod(0o755)
    monkeypatch.setenv("DEPLOY_HOOK_COMMAND", f"{script} --rollback")
    reset_settings()
    assert rollbacks.describe_deploy_hook() == f"command: {script} --rollback"
    failed = rollbacks.run_full_rollback(actor=ENGINEER, reason="bad release", uow=UnitOfWork(engine))
    assert (tmp_path / "called").read_text().strip() == "called with --rollback"
    assert failed.state == "failed" and failed.outcome.startswith("exit 7 after ")
    assert failed.outcome.endswith(": r41 not found")


def test_a_rollback_interrupted_midway_is_closed_as_failed_not_left_running(engine: Engine, monkeypatch,
                                                                            tmp_path: Path) -> None:
    """Ctrl-C during the deploy hook or the cleanup left the run "running" for good: nothing closed it, and the
    database run could never be run again ("Run 1 is running; it must be approved")."""
    from core.config import reset_settings
    seed_minimal(engine)
    monkeypatch.setenv("DEPLOY_HOOK_COMMAND", "/bin/true")
    reset_settings()

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rollbacks, "_call_hook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rollbacks.run_full_rollback(actor=ENGINEER, reason="bad release", uow=UnitOfWork(engine))
    run = rollbacks.request_database_rollback(actor=ENGINEER, reason="drill", typed_environment="development",
                                              uow=UnitOfWork(engine))
    monkeypatch.setattr(rollbacks, "cleanup_agent_tables", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rollbacks.execute_database_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine),
                                            backup_dir=tmp_path)
    runs = {r.kind: r for r in rollbacks.list_runs(actor=ENGINEER, uow=UnitOfWork(engine))}
    assert (runs["full"].state, runs["database"].state) == ("failed", "failed")
    assert runs["full"].outcome.startswith("interrupted before the end: the deploy hook may or may not have run")
    assert "db verify" in runs["database"].outcome


def test_a_rollback_run_is_timed_by_its_own_version_even_when_a_newer_change_follows(engine: Engine) -> None:
    """The run was closed by whoever looked next; by then a later settings change had been acknowledged, and the
    run took that acknowledgement's time (0.5 s recorded as 73.6 s)."""
    from datetime import timedelta

    from core.models import WorkerHeartbeat, utcnow
    from core.worker.store import acknowledge_settings

    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ADMIN, mode="full", reason="go", uow=UnitOfWork(engine))
    with UnitOfWork(engine) as uow:
        uow.session.add(WorkerHeartbeat(id="w1", host="h", pid=1, settings_version=2, last_seen_at=utcnow()))
        uow.commit()
    run = rollbacks.start_immediate_rollback(actor=ENGINEER, reason="bad replies", uow=UnitOfWork(engine))
    version = run.details["settings_version"]
    with engine.begin() as conn:  # the worker obeys the rollback half a second later
        acknowledge_settings(conn, worker_id="w1", version=version, seen_at=run.started_at + timedelta(seconds=0.5))
    controls.set_activation(actor=ADMIN, mode="full", reason="back on", uow=UnitOfWork(engine))
    with engine.begin() as conn:  # and the next change a minute later
        acknowledge_settings(conn, worker_id="w1", version=version + 1, seen_at=run.started_at + timedelta(seconds=73))
    done, _ = rollbacks.check_immediate_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine))
    assert done.state == "done" and done.duration_s == pytest.approx(0.5, abs=0.01)
    assert done.outcome == f"1 of 1 worker acknowledged version {version} in 0.5 s"


def test_a_request_that_has_not_run_can_be_withdrawn(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    """A mistaken or stale database rollback request could only be approved and run: it blocked every new request
    ('already approved; run it first') for good (a Chromium walkthrough)."""
    seed_minimal(engine, conversations=0)
    run = rollbacks.request_database_rollback(actor=ENGINEER, reason="drill", typed_environment="development",
                                              uow=UnitOfWork(engine))
    with pytest.raises(Conflict, match="run it first, or withdraw it"):
        rollbacks.request_database_rollback(actor=ENGINEER, reason="again", typed_environment="development",
                                            uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="A reason is required to withdraw"):
        rollbacks.withdraw_database_rollback(actor=ENGINEER, run_id=run.id, reason=" ", uow=UnitOfWork(engine))
    with pytest.raises(PermissionDenied, match="may not withdraw a database rollback"):
        rollbacks.withdraw_database_rollback(actor=ROLE_ACTORS["support"], run_id=run.id, reason="x",
                                             uow=UnitOfWork(engine))
    assert main(["rollback", "database", "withdraw", str(run.id), "--reason", "requested on the wrong day"]) == 0
    assert f"run {run.id} database: withdrawn" in capsys.readouterr().out
    assert main(["rollback", "database", "withdraw", str(run.id), "--reason", "twice"]) == 1
    assert "only a request that has not run can be withdrawn" in capsys.readouterr().err
    with pytest.raises(Conflict, match=f"^Run {run.id} was withdrawn; request a new database rollback"):
        rollbacks.execute_database_rollback(actor=ENGINEER, run_id=run.id, uow=UnitOfWork(engine))
    assert "agent_conversations" in inspect(engine).get_table_names()
    again = rollbacks.request_database_rollback(actor=ENGINEER, reason="the real one", typed_environment="development",
                                                uow=UnitOfWork(engine))
    assert again.state == "approved"
