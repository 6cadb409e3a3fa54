"""Changes to the live checklist: start a run, run checks, tick, waive, mark deployed, sign off.

Each is permission → change → audit record → one commit. Running checks records each item's result in its own
commit as it arrives, so progress is visible (and kept) while the rest still runs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core import audit
from core.auth import Actor, Permission
from core.checklist.catalogue import Item, get_item, runnable
from core.checklist.outcome import CheckContext
from core.checklist.runner import ItemResult, run_items
from core.config import get_settings
from core.errors import Conflict, UserInputError
from core.models import ChecklistResult, ChecklistRun, utcnow
from core.queries import checklist as q
from core.services.guard import refuse, require
from core.uow import UnitOfWork

ENVIRONMENTS = ("development", "staging", "production")
MAX_TEXT = 2000


@dataclass(frozen=True)
class RunView:
    id: int
    environment: str
    release: str
    started_by: str
    started_at: datetime


def _view(run: ChecklistRun) -> RunView:
    return RunView(run.id, run.environment, run.release, run.started_by, run.started_at)


def start_run(*, actor: Actor, uow: UnitOfWork, environment: str | None = None, release: str | None = None) -> RunView:
    """The run of ENVIRONMENT and RELEASE (None: this deployment's), started now unless it already exists."""
    environment, release = environment or get_settings().environment, q.release_named(release)
    if environment not in ENVIRONMENTS:
        raise UserInputError(f"The environment must be one of {', '.join(ENVIRONMENTS)} (got {environment!r}).")
    if not release or len(release) > 100:
        raise UserInputError("The release must be 1 to 100 characters (RELEASE_ID or --release).")
    if not release.isprintable():  # a newline would start a line of its own in the report and the audit trail
        raise UserInputError(f"The release must be one line of printable characters (got {release!r}).")
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="checklist.start", target=f"{environment} {release}")
        run = uow.session.scalars(select(ChecklistRun).where(ChecklistRun.environment == environment,
                                                             ChecklistRun.release == release)).first()
        if run is None:
            run = ChecklistRun(environment=environment, release=release, started_by=actor.username, started_at=utcnow())
            uow.session.add(run)
            uow.session.flush()
            audit.append(uow.session, actor=actor, action="checklist.start", target=f"run {run.id}",
                         after={"environment": environment, "release": release})
            uow.commit()
        return _view(run)


def _locked_run(uow: UnitOfWork, run_id: int) -> ChecklistRun:
    run = uow.session.get(ChecklistRun, run_id, with_for_update=True)
    if run is None:
        q.get_run_row_or_raise(uow.session, run_id)
    return run


def _record(uow: UnitOfWork, actor: Actor, run_id: int, result: ItemResult, *, note: str = "",
            check: str | None = None) -> None:
    """One result and its audit record, committed; with CHECK, the permission is checked in the same unit."""
    with uow:
        if check:
            require(uow, actor, Permission.CHECKLIST, action=check, target=f"run {run_id} {result.item_id}")
        _locked_run(uow, run_id)
        uow.session.add(ChecklistResult(run_id=run_id, item_id=result.item_id, kind=result.kind, status=result.status,
                                        evidence=result.evidence, actor=actor.username[:100], recorded_at=utcnow(),
                                        duration_ms=result.duration_ms, note=note))
        audit.append(uow.session, actor=actor, action=f"checklist.{result.kind}", target=f"run {run_id} {result.item_id}",
                     reason=note, after={"status": result.status, "detail": str(result.evidence.get("detail", ""))[:300]})
        uow.commit()


def run_checks(*, actor: Actor, run_id: int, uow: UnitOfWork, section: str | None = None, item_id: str | None = None,
               confirm: str | None = None, on_result: Callable[[ItemResult], None] | None = None) -> list[ItemResult]:
    """Run the automated items of the selection (one item, a section, or all) and record each result."""
    items = runnable(section, item_id)
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="checklist.run", target=f"run {run_id}")
        run = q.get_run_row_or_raise(uow.session, run_id)
        statuses = q.current_statuses(uow.session, actor=actor, run_id=run_id)
        ctx = CheckContext(engine=uow.engine, settings=get_settings(), actor=actor, environment=run.environment,
                           release=run.release, deployed_at=run.deployed_at, confirm=confirm,
                           history=lambda item: _history(uow, actor, run_id, item))

    def record(result: ItemResult) -> None:
        _record(uow, actor, run_id, result)
        if on_result is not None:
            on_result(result)

    return run_items(items, ctx, statuses=statuses, on_result=record)


def _history(uow: UnitOfWork, actor: Actor, run_id: int, item_id: str) -> list[dict]:
    from core.db import read_session

    with read_session(uow.engine) as s:
        return q.history(s, actor=actor, run_id=run_id, item_id=item_id)


def _text(value: str, what: str, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise UserInputError(f"A {what} is required.")
    if len(value) > MAX_TEXT:
        raise UserInputError(f"The {what} is too long (at most {MAX_TEXT} characters).")
    return value


def tick_item(*, actor: Actor, run_id: int, item_id: str, uow: UnitOfWork, note: str = "") -> None:
    """Mark a manual item done, with who, when and a note (required: what was done, or where it shows)."""
    item: Item = get_item(item_id)
    if item.automated:  # said first: a note would not make it tickable ("A note is required." misled)
        raise UserInputError(f"{item_id} is checked automatically: run it, or waive it with a reason.")
    note = _text(note, "note", required=True)
    _record(uow, actor, run_id, ItemResult(item_id, "tick", "done", {"measured": "manual", "detail": note}), note=note,
            check="checklist.tick")


def waive_item(*, actor: Actor, run_id: int, item_id: str, reason: str, uow: UnitOfWork) -> None:
    """Accept an item as it is, for a stated reason (engineers and admins)."""
    get_item(item_id)
    reason = _text(reason, "reason for the waiver", required=True)
    _record(uow, actor, run_id, ItemResult(item_id, "waive", "waived", {"measured": "waiver", "detail": reason}),
            note=reason, check="checklist.waive")


def mark_deployed(*, actor: Actor, run_id: int, uow: UnitOfWork, at: datetime | None = None) -> RunView:
    """Record when the release was deployed: the post-deployment windows count from here."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="checklist.deployed", target=f"run {run_id}")
        run = _locked_run(uow, run_id)
        before = run.deployed_at
        run.deployed_at = at or utcnow()
        audit.append(uow.session, actor=actor, action="checklist.deployed", target=f"run {run_id}",
                     before={"deployed_at": before.isoformat() if before else None},
                     after={"deployed_at": run.deployed_at.isoformat()})
        uow.commit()
        return _view(run)


def sign_off(*, actor: Actor, run_id: int, uow: UnitOfWork, note: str = "") -> RunView:
    """Sign the run off when it is a go with nothing open; in production not by whoever waived a blocking item."""
    note = _text(note, "note", required=False)
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="checklist.sign_off", target=f"run {run_id}")
        run = _locked_run(uow, run_id)
        if run.signed_off_by:
            raise Conflict(f"Run {run_id} was already signed off by {run.signed_off_by} at {run.signed_off_at:%Y-%m-%d %H:%M} UTC.")
        state = q.get_run_state(uow.session, actor=actor, run_id=run_id)
        if not state.go or state.open:
            left = state.blocking + state.open
            raise Conflict("Not signed off: " + "; ".join(f"{s.item.title} ({s.status})" for s in left[:10]) + ".")
        waivers = {s.waiver.actor for s in state.items if s.item.blocking and s.status == "waived" and s.waiver}
        if run.environment == "production" and actor.username in waivers:
            refuse(uow, actor, action="checklist.sign_off", target=f"run {run_id}",
                   reason="waived a blocking item of this production run",
                   message="In production the sign-off must come from someone other than whoever waived a blocking "
                           "item; ask another engineer.")
        run.signed_off_by, run.signed_off_at, run.sign_off_note = actor.username[:100], utcnow(), note
        audit.append(uow.session, actor=actor, action="checklist.sign_off", target=f"run {run_id}", reason=note,
                     after={"environment": run.environment, "release": run.release, "waived_by": sorted(waivers)})
        uow.commit()
        return _view(run)
