"""The Rollbacks page's forms and its runs panel: the followed run's banner and the runs table from one read."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import pandas as pd
import streamlit as st

from core.auth import Actor
from core.services import rollbacks
from core.services.rollbacks import RunView
from core.uow import UnitOfWork
from dashboard.components import (
    Acted,
    act,
    clicked,
    form_key,
    intent_button,
    live_fragment,
    nothing_picked,
    pick,
    plain_md,
)

FOLLOWED = "rollback_run"  # the run this tab started last; its banner sits above the runs table
DATABASE_SAID = "rollback_database_said"  # the outcome of a database run or approval, for the run after it


def reason_form(name: str, button: str, *, confirm: str | None = None, primary: bool = False) -> dict[str, str] | None:
    """The reason (and a typed confirmation) with its button in one form: the values once submitted."""
    key = form_key(name)
    with st.form(key):
        typed = st.text_input(confirm, key=f"{key}_confirm") if confirm else ""
        reason = st.text_input("Reason", key=f"{key}_reason")
        submitted = st.form_submit_button(button, type="primary" if primary else "secondary")
    return {"reason": reason, "confirm": typed} if submitted else None


def start(fn: Callable[[], RunView], *, form: str) -> None:
    """Start a run through FN; on success follow it, empty the form and draw the page again (errors stay)."""
    run = act(fn)
    if run:
        run.done(reset=(form,), keep={FOLLOWED: run.value.id})


def pending_database_runs(actor: Actor) -> None:
    """Database rollbacks waiting for approval or for their run, with the buttons that move them on."""
    waiting = [r for r in act(lambda: rollbacks.list_runs(actor=actor, uow=UnitOfWork())).value or []
               if r.kind == "database" and r.state in ("awaiting_approval", "approved")]
    if said := st.session_state.pop(DATABASE_SAID, None):
        st.success(said)
    if (approving := clicked("approve")) is not None:  # even if the run no longer draws its button
        if approved := act(lambda: rollbacks.approve_database_rollback(actor=actor, run_id=approving,
                                                                       uow=UnitOfWork())):
            _said(approved, f"Run {approving} approved by {actor.username}; it can run now.")
    for run in waiting:
        cols = st.columns([4, 1, 1])
        cols[0].text(f"Run {run.id}: {run.state.replace('_', ' ')}, requested by {run.requested_by}")
        if run.state == "awaiting_approval":
            # A callback keeps the click: when another engineer approved meanwhile, this run draws no button and
            # the click was dropped without a word; now the service says who approved it.
            intent_button(cols[1], "Approve", key=f"approve_{run.id}", intent="approve", value=run.id)
        if run.state == "approved" and cols[2].button("Run now", type="primary", key=f"run_{run.id}"):
            with st.spinner("Backing up and dropping the agent tables…"):
                done = act(lambda r=run: rollbacks.execute_database_rollback(actor=actor, run_id=r.id,
                                                                             uow=UnitOfWork()))
                if done:  # said before the spinner closes (a point where a click may stop the run); drawn again:
                    # the run left its Run now button and the table its old counts behind
                    _said(done, plain_md(f"Run {done.value.id}: {done.value.state}, {done.value.outcome}.")
                          + " Restore with `python -m core db restore PATH`.", keep={FOLLOWED: done.value.id})
    if waiting:
        _withdraw_form(actor, {r.id: f"run {r.id} ({r.state.replace('_', ' ')}, by {r.requested_by})" for r in waiting})


def _withdraw_form(actor: Actor, runs: dict[int, str]) -> None:
    """Withdraw a request that has not run: a mistaken or stale one otherwise blocked every new request."""
    key = form_key("withdraw_database")
    with st.form(key):
        cols = st.columns([2, 3, 1])
        picked = pick(cols[0], "Withdraw request", runs, key=f"{key}_pick", what="a request")
        reason = cols[1].text_input("Reason", key=f"{key}_reason")
        if not cols[2].form_submit_button("Withdraw"):
            return
    if picked is None:
        nothing_picked("a request", key=f"{key}_pick")
    elif withdrawn := act(lambda: rollbacks.withdraw_database_rollback(actor=actor, run_id=picked, reason=reason,
                                                                      uow=UnitOfWork())):
        _said(withdrawn, f"Run {picked} withdrawn.", reset=("withdraw_database",))


def _said(acted: Acted[Any], sentence: str, *, reset: tuple[str, ...] = (),
          keep: dict[str, Any] | None = None) -> NoReturn:
    """Say SENTENCE above the database runs once the page has been drawn again."""
    acted.done(reset=reset, keep={**(keep or {}), DATABASE_SAID: sentence})


@live_fragment(run_every=2)
def runs_panel(actor: Actor) -> None:
    """Close immediate runs every worker has acknowledged, then show the followed run and the table, from one read."""
    listed = act(lambda: rollbacks.list_runs(actor=actor, uow=UnitOfWork())).value or []
    for run in [r for r in listed if r.kind == "immediate" and r.state == "running"]:
        act(lambda r=run: rollbacks.check_immediate_rollback(actor=actor, run_id=r.id, uow=UnitOfWork()))
    if any(r.kind == "immediate" and r.state == "running" for r in listed):
        listed = act(lambda: rollbacks.list_runs(actor=actor, uow=UnitOfWork())).value or []
    followed = next((r for r in listed if r.id == st.session_state.get(FOLLOWED)), None)
    if followed is not None:
        banner(followed)
    st.dataframe(pd.DataFrame([{"run": r.id, "kind": r.kind, "state": r.state.replace("_", " "),
                                "by": r.requested_by, "approved by": r.approved_by,
                                "started": f"{r.started_at:%Y-%m-%d %H:%M:%S} UTC",
                                "duration s": None if r.duration_s is None else round(r.duration_s, 1),
                                "target s": r.target_s, "outcome": r.outcome} for r in listed]),
                 hide_index=True, width="stretch")


def banner(run: RunView) -> None:
    """One line on a run, in the words of its state; its outcome whenever it has one (e.g. 'already off')."""
    took = f" in {run.duration_s:.1f} s" if run.state == "done" and run.duration_s is not None else ""
    outcome = f" {run.outcome}" if run.outcome else ""
    text = f"Run {run.id} ({run.kind}): {run.state.replace('_', ' ')}{took}.{outcome}"
    # The outcome may hold a reason someone typed or a deploy hook's output: shown as typed, never as markdown.
    {"done": st.success, "failed": st.error}.get(run.state, st.info)(plain_md(text))
