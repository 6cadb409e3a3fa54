"""Closing immediate-rollback runs: when every worker has acknowledged, and before a newer settings version
replaces theirs (afterwards a worker's acknowledgement time is the newer version's, and the run would be timed by
it). Apart from core.services.rollbacks so that the settings change can use it without an import cycle."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core import audit
from core.auth import Actor
from core.models import RollbackRun, utcnow
from core.queries.controls import get_propagation
from core.uow import UnitOfWork


def finish_run(uow: UnitOfWork, run: RollbackRun, *, actor: Actor, state: str, outcome: str,
               duration_s: float | None = None, **details: Any) -> None:
    """Mark RUN finished (STATE done or failed) and audit it, in the caller's transaction."""
    run.state, run.outcome, run.finished_at = state, outcome, utcnow()
    run.duration_s = duration_s if duration_s is not None else (run.finished_at - run.started_at).total_seconds()
    run.details = {**(run.details or {}), **details}
    audit.append(uow.session, actor=actor, action=f"rollback.{run.kind}.finish", target=f"run {run.id}",
                 outcome="ok" if state == "done" else "failed", reason=outcome,
                 after={"state": state, "duration_s": run.duration_s})


def close_if_acknowledged(uow: UnitOfWork, *, actor: Actor, run: RollbackRun, superseded_by: int | None = None
                          ) -> str:
    """Finish running RUN if every live worker has its version (or, SUPERSEDED_BY a newer one, in any case);
    returns the propagation sentence."""
    prop = get_propagation(uow.session, actor=actor, version=run.details["settings_version"],
                           changed_at=run.started_at)
    if run.state != "running" or not (prop.complete or superseded_by):
        return prop.sentence()
    took = prop.seconds if prop.complete and prop.seconds is not None else None
    outcome = prop.sentence() if prop.complete else (
        f"{prop.sentence()}; settings version {superseded_by} replaced it before every worker had it")
    finish_run(uow, run, actor=actor, state="done", outcome=outcome, duration_s=took, acknowledged=prop.acknowledged)
    return outcome


def close_before_newer_version(uow: UnitOfWork, *, actor: Actor, new_version: int) -> None:
    """Close the running immediate rollbacks before settings NEW_VERSION replaces their version."""
    runs = uow.session.scalars(select(RollbackRun).where(RollbackRun.kind == "immediate",
                                                         RollbackRun.state == "running").with_for_update()).all()
    for run in runs:
        close_if_acknowledged(uow, actor=actor, run=run, superseded_by=new_version)
