"""Rollbacks: the checklist's three procedures as guided actions, each run recorded with its measured time."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.config import get_settings
from core.db import get_engine
from core.services import rollbacks, schema
from core.uow import UnitOfWork
from dashboard import components

actor = components.page_guard(Permission.ROLLBACK, "Rollbacks")
env = get_settings().environment
st.title("Rollbacks")
immediate, full, database = st.tabs(["Immediate (< 5 min)", "Full (< 15 min)", "Database"])

with immediate:
    st.write("Engage the kill switch: no new conversation starts; in-flight ones finish. The run ends when every "
             "live worker has acknowledged, and its duration is measured from the click.")
    reason = st.text_input("Reason", key="imm_reason")
    if st.button("Start immediate rollback", type="primary", disabled=not reason.strip(), key="imm_go"):
        run = components.act(lambda: rollbacks.start_immediate_rollback(actor=actor, reason=reason, uow=UnitOfWork()))
        if run:
            st.session_state["rollback_run"] = run.value.id

    @components.live_fragment(run_every=1)
    def immediate_progress() -> None:
        run, sentence = rollbacks.check_immediate_rollback(actor=actor, run_id=st.session_state["rollback_run"],
                                                           uow=UnitOfWork())
        (st.success if run.state == "done" else st.info)(
            sentence + (f" Run {run.id} done in {run.duration_s:.1f} s." if run.state == "done" else ""))

    if "rollback_run" in st.session_state:
        immediate_progress()

with full:
    st.write("Return to the previous release through the configured deploy hook.")
    st.text(f"Current release: {get_settings().release_id}\nWill call: {rollbacks.describe_deploy_hook()}")
    reason_full = st.text_input("Reason", key="full_reason")
    if st.button("Call the deploy hook", disabled=not reason_full.strip(), key="full_go"):
        with st.spinner("Calling the deploy hook…"):
            run = components.act(lambda: rollbacks.run_full_rollback(actor=actor, reason=reason_full, uow=UnitOfWork()))
        if run:
            (st.success if run.value.state == "done" else st.error)(f"Run {run.value.id}: {run.value.state}, "
                                                                    f"{run.value.outcome}")

with database:
    st.write("Back up, then drop only the agent tables (shops, clients and users stay). "
             + ("In production a second engineer approves before it runs." if env == "production" else ""))
    counts = components.with_database(lambda: schema.table_counts(get_engine()), fallback={})
    st.dataframe(pd.DataFrame(list(counts.items()), columns=["agent table", "rows"]), hide_index=True)
    typed = st.text_input(f"Type the environment name ({env}) to confirm", key="db_confirm")
    reason_db = st.text_input("Reason", key="db_reason")
    if st.button("Request database rollback", disabled=not (typed and reason_db.strip()), key="db_request"):
        run = components.act(lambda: rollbacks.request_database_rollback(
            actor=actor, reason=reason_db, typed_environment=typed, uow=UnitOfWork()))
        if run:
            st.success(f"Run {run.value.id}: {run.value.state.replace('_', ' ')}.")
    runs = components.act(lambda: rollbacks.list_runs(actor=actor, uow=UnitOfWork())).value or []
    for run in [r for r in runs if r.kind == "database" and r.state in ("awaiting_approval", "approved")]:
        cols = st.columns([4, 1, 1])
        cols[0].text(f"Run {run.id}: {run.state.replace('_', ' ')}, requested by {run.requested_by}")
        if run.state == "awaiting_approval" and cols[1].button("Approve", key=f"approve_{run.id}"):
            if components.act(lambda r=run: rollbacks.approve_database_rollback(actor=actor, run_id=r.id,
                                                                                uow=UnitOfWork())):
                st.rerun()
        if run.state == "approved" and cols[2].button("Run now", type="primary", key=f"run_{run.id}"):
            with st.spinner("Backing up and dropping the agent tables…"):
                done = components.act(lambda r=run: rollbacks.execute_database_rollback(actor=actor, run_id=r.id,
                                                                                        uow=UnitOfWork()))
            if done:
                st.success(f"Run {done.value.id}: {done.value.state}, {done.value.outcome}. "
                           "Restore with `python -m core db restore PATH`.")

st.subheader("Runs")
runs = components.act(lambda: rollbacks.list_runs(actor=actor, uow=UnitOfWork())).value or []
st.dataframe(pd.DataFrame([{"run": r.id, "kind": r.kind, "state": r.state, "by": r.requested_by,
                            "approved by": r.approved_by, "started": r.started_at, "duration s": r.duration_s,
                            "target s": r.target_s, "outcome": r.outcome} for r in runs]),
             hide_index=True, width="stretch")
