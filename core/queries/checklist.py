"""Reads of the live checklist: a run with each item's current state, progress per section, go / no-go."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.checklist.catalogue import ITEMS, SECTIONS, Item, Section
from core.checklist.runner import SATISFIED
from core.config import get_settings
from core.errors import NotFound
from core.models import ChecklistResult, ChecklistRun, utcnow
from core.queries.scope import require_read
from core.text import counted

# What a person sees as finished in a progress bar (a stale or failed result is not).
FINISHED = SATISFIED
NO_GO = ("fail", "blocked")


@dataclass(frozen=True)
class Recorded:
    """One stored result, as shown."""

    kind: str
    status: str
    evidence: dict[str, Any]
    actor: str
    at: datetime
    duration_ms: float | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "status": self.status, "evidence": self.evidence, "by": self.actor,
                "at": self.at.isoformat(timespec="seconds"), "duration_ms": self.duration_ms, "note": self.note}


@dataclass
class ItemState:
    item: Item
    status: str  # pass | warn | fail | done | waived | blocked | stale | pending
    last: Recorded | None = None  # the newest check, tick or block
    waiver: Recorded | None = None
    runs: int = 0  # results recorded for this item (history)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.item.id, "title": self.item.title, "section": self.item.section,
                "automated": self.item.automated, "blocking": self.item.blocking, "depends": list(self.item.depends),
                "status": self.status, "last": self.last.as_dict() if self.last else None,
                "waiver": self.waiver.as_dict() if self.waiver else None, "results_recorded": self.runs}


@dataclass
class RunState:
    id: int
    environment: str
    release: str
    started_by: str
    started_at: datetime
    deployed_at: datetime | None
    signed_off_by: str | None
    signed_off_at: datetime | None
    sign_off_note: str | None
    items: list[ItemState] = field(default_factory=list)

    def by_id(self) -> dict[str, ItemState]:
        return {s.item.id: s for s in self.items}

    def section_progress(self) -> list[tuple[Section, int, int]]:
        """(section, finished, total) in the seed's order."""
        out = []
        for section in SECTIONS:
            states = [s for s in self.items if s.item.section == section.key]
            out.append((section, sum(s.status in FINISHED for s in states), len(states)))
        return out

    @property
    def progress(self) -> tuple[int, int]:
        return sum(s.status in FINISHED for s in self.items), len(self.items)

    @property
    def blocking(self) -> list[ItemState]:
        """Blocking items that failed or are blocked: each one makes the run a no-go."""
        return [s for s in self.items if s.item.blocking and s.status in NO_GO]

    @property
    def open(self) -> list[ItemState]:
        """Blocking items not yet done (never run, not ticked, stale, or waiting for their window)."""
        return [s for s in self.items if s.item.blocking and s.status in ("pending", "stale", "waiting")]

    @property
    def go(self) -> bool:
        return not self.blocking

    def verdict(self) -> str:
        """One sentence: go or no-go, naming the blocking items."""
        if self.blocking:
            return "NO-GO: " + "; ".join(f"{s.item.title} ({s.status})" for s in self.blocking)
        if self.open:
            return f"GO so far: nothing failed; {counted(len(self.open), 'blocking item')} still open"
        return "GO: every blocking item passed, was ticked or was waived"

    def as_dict(self) -> dict[str, Any]:
        done, total = self.progress
        return {"run": self.id, "environment": self.environment, "release": self.release,
                "started_by": self.started_by, "started_at": _iso(self.started_at), "deployed_at": _iso(self.deployed_at),
                "signed_off_by": self.signed_off_by, "signed_off_at": _iso(self.signed_off_at),
                "sign_off_note": self.sign_off_note, "go": self.go, "verdict": self.verdict(),
                "blocking": [s.item.id for s in self.blocking], "open": [s.item.id for s in self.open],
                "progress": {"done": done, "total": total},
                "sections": [{"key": sec.key, "part": sec.part, "title": sec.title, "done": d, "total": t}
                             for sec, d, t in self.section_progress()],
                "items": [s.as_dict() for s in self.items]}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _recorded(row: ChecklistResult) -> Recorded:
    return Recorded(row.kind, row.status, row.evidence or {}, row.actor, row.recorded_at, row.duration_ms, row.note)


def get_run_row_or_raise(session: Session, run_id: int) -> ChecklistRun:
    """The stored run RUN_ID, or NotFound."""
    run = session.get(ChecklistRun, run_id)
    if run is None:
        raise NotFound(f"No checklist run with id {run_id}.")
    return run


def release_named(release: str | None) -> str:
    """The release a command or form names: None means this deployment's (RELEASE_ID); anything typed, even empty
    (a cleared Release box), is taken as typed, so an empty one is refused rather than taken for another."""
    return (get_settings().release_id if release is None else release).strip()


def find_run(session: Session, *, actor: Actor, environment: str, release: str) -> ChecklistRun | None:
    """The run of ENVIRONMENT and RELEASE, if one was started."""
    require_read(actor, Permission.VIEW_HEALTH)
    return session.scalars(select(ChecklistRun).where(ChecklistRun.environment == environment,
                                                      ChecklistRun.release == release)).first()


def list_runs(session: Session, *, actor: Actor, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs, for choosing one."""
    require_read(actor, Permission.VIEW_HEALTH)
    rows = session.scalars(select(ChecklistRun).order_by(ChecklistRun.id.desc()).limit(limit))
    return [{"id": r.id, "environment": r.environment, "release": r.release, "started_at": r.started_at,
             "signed_off_by": r.signed_off_by} for r in rows]


def get_run_state(session: Session, *, actor: Actor, run_id: int, now: datetime | None = None) -> RunState:
    """Run RUN_ID with every item's current state (newest result; waivers; stale; blocked by dependencies)."""
    require_read(actor, Permission.VIEW_HEALTH)
    run = get_run_row_or_raise(session, run_id)
    r = ChecklistResult
    # Only the newest result and the newest waiver of each item are read (the index on run, item, id), however
    # long the history: re-running the checklist many times does not slow the page.
    newest = select(func.max(r.id)).where(r.run_id == run_id).group_by(r.item_id, case((r.kind == "waive", 1), else_=0))
    last: dict[str, ChecklistResult] = {}
    waivers: dict[str, ChecklistResult] = {}
    for row in session.scalars(select(r).where(r.id.in_(newest))):
        (waivers if row.kind == "waive" else last)[row.item_id] = row
    counts = dict(session.execute(select(r.item_id, func.count()).where(r.run_id == run_id).group_by(r.item_id)).all())
    stale_before = (now or utcnow()) - timedelta(hours=get_settings().checklist_stale_hours)
    state = RunState(run.id, run.environment, run.release, run.started_by, run.started_at, run.deployed_at,
                     run.signed_off_by, run.signed_off_at, run.sign_off_note)
    statuses: dict[str, str] = {}
    for item in ITEMS:
        got, waived = last.get(item.id), waivers.get(item.id)
        status = _status(item, got, waived, statuses, stale_before)
        statuses[item.id] = status
        state.items.append(ItemState(item, status, _recorded(got) if got else None,
                                     _recorded(waived) if waived else None, counts.get(item.id, 0)))
    return state


def _status(item: Item, got: ChecklistResult | None, waived: ChecklistResult | None, statuses: dict[str, str],
            stale_before: datetime) -> str:
    if got is not None and got.status in SATISFIED:
        return "stale" if got.recorded_at < stale_before else got.status
    if waived is not None:  # a waiver stands over later failures until the item passes
        return "waived"
    if got is not None:
        return got.status
    if any(statuses.get(d) in NO_GO for d in item.depends):
        return "blocked"  # a dependency failed: this one cannot pass until it does
    return "pending"


def current_statuses(session: Session, *, actor: Actor, run_id: int) -> dict[str, str]:
    """Item id → current status, for the runner's dependency decisions."""
    return {s.item.id: s.status for s in get_run_state(session, actor=actor, run_id=run_id).items}


def history(session: Session, *, actor: Actor, run_id: int, item_id: str) -> list[dict[str, Any]]:
    """Every result of ITEM_ID in run RUN_ID, oldest first."""
    require_read(actor, Permission.VIEW_HEALTH)
    rows = session.scalars(select(ChecklistResult).where(ChecklistResult.run_id == run_id,
                                                         ChecklistResult.item_id == item_id)
                           .order_by(ChecklistResult.id))
    return [_recorded(r).as_dict() for r in rows]
