"""Rollbacks: the checklist's three procedures as guided actions, each run recorded with its measured time."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.config import get_settings
from core.db import get_engine
from core.queries.settings import get_activation_state
from core.services import rollbacks, schema
from core.uow import UnitOfWork
from dashboard import components
from dashboard.rollback_widgets import pending_database_runs, reason_form, runs_panel, start

actor = components.page_guard(Permission.ROLLBACK, "Rollbacks")
env = get_settings().environment
st.title("Rollbacks")
immediate, full, database = st.tabs(["Immediate (< 5 min)", "Full (< 15 min)", "Database"])

with immediate:
    st.write("Engage the kill switch: no new conversation starts; in-flight ones finish. The run ends when every "
             "live worker has acknowledged, and its duration is measured from the click.")
    state = components.with_database(lambda: components.read(get_activation_state), fallback=None)
    if state is not None and not state.running:  # "already off" read as if one's own rollback had done nothing
        by = "you" if state.changed_by == actor.username else state.changed_by
        st.info(f"The agent system is off (mode {state.mode}, settings version {state.version}, switched by {by} "
                f"at {state.changed_at:%H:%M:%S} UTC); another rollback now would stop nothing.")
    if (form := reason_form("immediate", "Start immediate rollback", primary=True)) is not None:
        start(lambda: rollbacks.start_immediate_rollback(actor=actor, reason=form["reason"], uow=UnitOfWork()),
              form="immediate")

with full:
    st.write("Return to the previous release through the configured deploy hook.")
    st.text(f"Current release: {get_settings().release_id}\nWill call: {rollbacks.describe_deploy_hook()}")
    if (form := reason_form("full", "Call the deploy hook")) is not None:
        with st.spinner("Calling the deploy hook…"):
            start(lambda: rollbacks.run_full_rollback(actor=actor, reason=form["reason"], uow=UnitOfWork()),
                  form="full")

with database:
    st.write("Back up, then drop only the agent tables (shops, clients and users stay). "
             + ("In production a second engineer approves before it runs." if env == "production" else ""))
    counts = components.with_database(lambda: schema.table_counts(get_engine()), fallback={})
    st.dataframe(pd.DataFrame(list(counts.items()), columns=["agent table", "rows"]), hide_index=True)
    form = reason_form("database", "Request database rollback", confirm=f"Type the environment name ({env}) to confirm")
    if form is not None:
        start(lambda: rollbacks.request_database_rollback(actor=actor, reason=form["reason"],
                                                          typed_environment=form["confirm"], uow=UnitOfWork()),
              form="database")
    pending_database_runs(actor)

st.subheader("Runs")
runs_panel(actor)
