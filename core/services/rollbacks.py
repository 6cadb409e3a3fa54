"""The checklist's three rollbacks, each recorded as a run: immediate (< 5 min), full (< 15 min), database."""
from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from core import audit
from core.auth import Actor, Permission, Role
from core.config import get_settings, mask_command, mask_secrets_in_text, mask_url
from core.db import read_session
from core.errors import Conflict, NotFound, UserInputError, first_line
from core.inputs import required_reason
from core.models import RollbackRun, utcnow
from core.services.controls import apply_settings_change, switch_off
from core.services.guard import authorize_read, refuse, require
from core.services.rollback_runs import close_if_acknowledged, finish_run
from core.services.schema import cleanup_agent_tables
from core.uow import UnitOfWork

TARGET_SECONDS = {"immediate": 5 * 60, "full": 15 * 60, "database": 15 * 60}


@dataclass(frozen=True)
class RunView:
    id: int
    kind: str
    state: str
    requested_by: str
    approved_by: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    target_s: float
    outcome: str | None
    details: dict[str, Any]


def _view(run: RollbackRun) -> RunView:
    return RunView(run.id, run.kind, run.state, run.requested_by, run.approved_by, run.started_at, run.finished_at,
                   run.duration_s, run.target_s, run.outcome, dict(run.details or {}))


def _get_run(uow: UnitOfWork, run_id: int, kind: str) -> RollbackRun:
    run = uow.session.get(RollbackRun, run_id, with_for_update=True)
    if run is None or run.kind != kind:
        raise NotFound(f"No {kind} rollback run with id {run_id}.")
    return run


def start_immediate_rollback(*, actor: Actor, reason: str, uow: UnitOfWork) -> RunView:
    """Engage the kill switch and open a run; it is done when every live worker has acknowledged.

    On a system that is already off nothing is stopped: the run is recorded as `already_off`, taking 0 s."""
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="rollback.immediate.start", target="agent_settings")
        state, changed = apply_settings_change(uow, actor=actor, action="kill_switch.engage", reason=reason,
                                               expected_version=None, apply=switch_off)
        now = utcnow()
        run = RollbackRun(kind="immediate", state="running", requested_by=actor.username, started_at=now,
                          target_s=TARGET_SECONDS["immediate"], details={"settings_version": state.version})
        if not changed:
            run.state, run.finished_at, run.duration_s = "already_off", now, 0.0
            run.outcome = (f"The agent system was already off (settings version {state.version}); "
                           "nothing was stopped.")
        uow.session.add(run)
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="rollback.immediate.start", target=f"run {run.id}", reason=reason,
                     after={"state": run.state, "settings_version": state.version})
        uow.commit()
        return _view(run)


def check_immediate_rollback(*, actor: Actor, run_id: int, uow: UnitOfWork) -> tuple[RunView, str]:
    """Close the run once every live worker has acknowledged; returns the run and the propagation sentence."""
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="rollback.immediate.check", target=f"run {run_id}")
        run = _get_run(uow, run_id, "immediate")
        sentence = close_if_acknowledged(uow, actor=actor, run=run)
        uow.commit()
        return _view(run), sentence


def describe_deploy_hook() -> str:
    """What the full rollback will call, shown before it is called (no secrets)."""
    s = get_settings()
    if s.deploy_hook_url:
        return f"HTTP POST {mask_url(s.deploy_hook_url)} with {{'action': 'rollback', 'from_release': '{s.release_id}'}}"
    if s.deploy_hook_command:
        return f"command: {mask_command(shlex.join(_hook_argv(s.deploy_hook_command)))}"
    return "nothing: set DEPLOY_HOOK_URL or DEPLOY_HOOK_COMMAND to enable the full rollback"


def run_full_rollback(*, actor: Actor, reason: str, uow: UnitOfWork) -> RunView:
    """Return to the previous release through the configured deploy hook; the run is recorded before the call."""
    s = get_settings()
    reason = required_reason(reason, "A reason is required for a rollback.")
    with uow:
        # Permission first: someone who may not roll back is refused (and audited) whatever is configured.
        require(uow, actor, Permission.ROLLBACK, action="rollback.full.start", target=describe_deploy_hook())
        if not (s.deploy_hook_url or s.deploy_hook_command):
            raise UserInputError("No deploy hook is configured: set DEPLOY_HOOK_URL or DEPLOY_HOOK_COMMAND.")
        run = RollbackRun(kind="full", state="running", requested_by=actor.username, started_at=utcnow(),
                          target_s=TARGET_SECONDS["full"], details={"hook": describe_deploy_hook(), "from_release": s.release_id})
        uow.session.add(run)
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="rollback.full.start", target=f"run {run.id}", reason=reason,
                     after={"hook": describe_deploy_hook(), "from_release": s.release_id})
        uow.commit()
        run_id = run.id
    try:
        ok, outcome, to_release = _call_hook(actor, reason)
    except BaseException:  # Ctrl-C or a stop during the hook: the run must not stay "running" for good
        _close_interrupted(uow, run_id, "full", actor, "the deploy hook may or may not have run; check the release")
        raise
    with uow:
        run = _get_run(uow, run_id, "full")
        finish_run(uow, run, actor=actor, state="done" if ok else "failed", outcome=outcome, to_release=to_release)
        uow.commit()
        return _view(run)


def _call_hook(actor: Actor, reason: str) -> tuple[bool, str, str | None]:
    s = get_settings()
    started = time.perf_counter()
    try:
        if s.deploy_hook_url:
            resp = requests.post(s.deploy_hook_url, timeout=s.deploy_hook_timeout_seconds, json={
                "action": "rollback", "from_release": s.release_id, "requested_by": actor.username, "reason": reason})
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            release = body.get("release") or body.get("to_release")
            return resp.ok, f"HTTP {resp.status_code} after {time.perf_counter() - started:.1f} s", release
        proc = subprocess.run(_hook_argv(s.deploy_hook_command), capture_output=True, text=True,
                              timeout=s.deploy_hook_timeout_seconds)
        said = _last_line(proc.stdout)
        if proc.returncode != 0:  # why it failed is on stderr, which was thrown away ('exit 7 after 0.0 s: ')
            said = _last_line(proc.stderr) or said
        took = f"exit {proc.returncode} after {time.perf_counter() - started:.1f} s: {said}"
        return proc.returncode == 0, took, (said or None) if proc.returncode == 0 else None
    except (requests.RequestException, ValueError, OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the deploy hook failed: {_hook_problem(exc, s.deploy_hook_timeout_seconds)}", None


def _hook_argv(command: str) -> list[str]:
    """DEPLOY_HOOK_COMMAND with --rollback added, once: the checklist's `deploy-staging.sh --rollback`, typed as it
    is there, was called with `--rollback --rollback`."""
    argv = shlex.split(command)
    return argv if "--rollback" in argv else [*argv, "--rollback"]


def _last_line(text: str) -> str:
    """The last line a hook wrote, secrets masked, at most 200 characters."""
    return mask_secrets_in_text((text.strip().splitlines() or [""])[-1][:200])


def _hook_problem(exc: BaseException, timeout: float) -> str:
    """What went wrong with the hook, in words (the class name alone told an operator little)."""
    if isinstance(exc, (requests.Timeout, subprocess.TimeoutExpired)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidURL,
                        requests.exceptions.InvalidSchema)):
        return "DEPLOY_HOOK_URL is not an http(s) URL"
    if isinstance(exc, requests.ConnectionError):
        return "DEPLOY_HOOK_URL could not be reached"
    if isinstance(exc, FileNotFoundError):
        return f"no such command {mask_command(str(exc.filename or ''))}"
    if isinstance(exc, PermissionError):
        return f"{mask_command(str(exc.filename or 'the command'))} cannot be run (permission denied)"
    return mask_secrets_in_text(first_line(exc))[:200]


def request_database_rollback(*, actor: Actor, reason: str, typed_environment: str, uow: UnitOfWork) -> RunView:
    """Ask for the agent-table cleanup; in production a second engineer must approve before it runs."""
    env = get_settings().environment
    if typed_environment.strip() != env:
        raise UserInputError(f"Type the environment name ({env}) to confirm the database rollback.")
    reason = required_reason(reason, "A reason is required for a rollback.")
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="rollback.database.request", target=env)
        waiting = uow.session.execute(select(RollbackRun.id, RollbackRun.state).where(
            RollbackRun.kind == "database", RollbackRun.state.in_(("awaiting_approval", "approved")))).first()
        if waiting:
            step = "approve it" if waiting.state == "awaiting_approval" else "run it"
            raise Conflict(f"Database rollback run {waiting.id} is already {waiting.state.replace('_', ' ')}; "
                           f"{step} first, or withdraw it.")
        state = "awaiting_approval" if env == "production" else "approved"
        run = RollbackRun(kind="database", state=state, requested_by=actor.username, started_at=utcnow(),
                          target_s=TARGET_SECONDS["database"], details={"environment": env, "reason": reason})
        uow.session.add(run)
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="rollback.database.request", target=f"run {run.id}",
                     reason=reason, after={"state": state})
        uow.commit()
        return _view(run)


def approve_database_rollback(*, actor: Actor, run_id: int, uow: UnitOfWork) -> RunView:
    """The second engineer's approval; the requester cannot approve their own request."""
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="rollback.database.approve", target=f"run {run_id}")
        run = _get_run(uow, run_id, "database")
        if run.state != "awaiting_approval":
            by = f" by {run.approved_by}" if run.approved_by else ""
            raise Conflict(f"Run {run_id} is {run.state.replace('_', ' ')}{by}, not awaiting approval.")
        if run.requested_by == actor.username:
            refuse(uow, actor, action="rollback.database.approve", target=f"run {run_id}",
                   reason="the requester cannot approve their own database rollback",
                   message="A second engineer must approve: you requested this database rollback.")
        if actor.role == Role.SYSTEM and get_settings().environment != "development":
            refuse(uow, actor, action="rollback.database.approve", target=f"run {run_id}",
                   reason="an approval needs a named engineer, not the shell operator",
                   message="A named engineer must approve: use --actor NAME with AGENTOPS_TOKEN holding their token.")
        run.state, run.approved_by = "approved", actor.username
        audit.append(uow.session, actor=actor, action="rollback.database.approve", target=f"run {run_id}",
                     after={"requested_by": run.requested_by})
        uow.commit()
        return _view(run)


def withdraw_database_rollback(*, actor: Actor, run_id: int, reason: str, uow: UnitOfWork) -> RunView:
    """Withdraw a database rollback that has not run (mistaken or stale): it no longer blocks a new request.

    Without this a request could only be approved and run: one made by mistake blocked every other for good."""
    reason = required_reason(reason, "A reason is required to withdraw a database rollback.")
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="rollback.database.withdraw", target=f"run {run_id}")
        run = _get_run(uow, run_id, "database")
        if run.state not in ("awaiting_approval", "approved"):
            raise Conflict(f"Run {run_id} is {run.state.replace('_', ' ')}; only a request that has not run can be "
                           "withdrawn.")
        run.state, run.outcome, run.finished_at = "withdrawn", f"withdrawn by {actor.username}: {reason}", utcnow()
        audit.append(uow.session, actor=actor, action="rollback.database.withdraw", target=f"run {run_id}",
                     reason=reason, after={"requested_by": run.requested_by})
        uow.commit()
        return _view(run)


def execute_database_rollback(*, actor: Actor, run_id: int, uow: UnitOfWork, backup_dir: Path | None = None) -> RunView:
    """Run an approved database rollback: backup, then drop the agent tables (the same code as `db cleanup`)."""
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="rollback.database.run", target=f"run {run_id}")
        run = _get_run(uow, run_id, "database")
        if run.state in ("running", "done", "failed", "withdrawn"):  # 'is done; it must be approved…' before
            how = "was withdrawn" if run.state == "withdrawn" else f"has already run ({run.state})"
            raise Conflict(f"Run {run_id} {how}; request a new database rollback to run another.")
        if run.state != "approved":
            raise Conflict(f"Run {run_id} is {run.state.replace('_', ' ')}; it must be approved before it runs.")
        _same_environment(run)
        run.state = "running"
        uow.commit()
    started = time.perf_counter()
    confirm = get_settings().environment
    try:
        path, counts = cleanup_agent_tables(actor=actor, uow=UnitOfWork(uow.engine), confirm=confirm,
                                            backup_dir=backup_dir, approved_run=run_id)
        state, outcome, extra = "done", f"backup {path}", {"backup": str(path), "rows": counts}
    except Exception as exc:  # noqa: BLE001 - the run records the failure; the caller sees it too
        state, outcome, extra = "failed", f"{type(exc).__name__}: {exc}", {}
    except BaseException:  # Ctrl-C or a stop: closed as failed, not left "running" with no way to close it
        _close_interrupted(uow, run_id, "database", actor, "`python -m core db verify` says whether the tables went")
        raise
    with uow:
        run = _get_run(uow, run_id, "database")
        finish_run(uow, run, actor=actor, state=state, outcome=outcome, duration_s=time.perf_counter() - started, **extra)
        uow.commit()
        return _view(run)


def _close_interrupted(uow: UnitOfWork, run_id: int, kind: str, actor: Actor, what_now: str) -> None:
    with UnitOfWork(uow.engine) as fresh:
        run = _get_run(fresh, run_id, kind)
        finish_run(fresh, run, actor=actor, state="failed", outcome=f"interrupted before the end: {what_now}")
        fresh.commit()


def _same_environment(run: RollbackRun) -> None:
    """A run approved for one environment does not run in another: a development request approves itself, and run
    under ENVIRONMENT=production it would skip the second engineer production needs."""
    env, asked = get_settings().environment, (run.details or {}).get("environment")
    if asked != env:
        raise Conflict(f"Run {run.id} was requested for {asked}; this is {env}. Request a database rollback here.")
    if env == "production" and not run.approved_by:
        raise Conflict(f"Run {run.id} has no second engineer's approval; production needs one.")


def list_runs(*, actor: Actor, uow: UnitOfWork, limit: int = 50) -> list[RunView]:
    """The latest rollback runs, newest first (a read: no write lock, a refusal is still audited)."""
    authorize_read(uow, actor, Permission.ROLLBACK, action="rollback.list")
    with read_session(uow.engine) as s:
        return [_view(r) for r in s.scalars(select(RollbackRun).order_by(RollbackRun.id.desc()).limit(limit))]
