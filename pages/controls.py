"""Controls: kill switch, activation scope, per-type disable, per-instance pause, rollback triggers."""
from __future__ import annotations

import streamlit as st

from core.auth import Permission
from core.db import read_session
from core.models import AGENT_TYPES
from core.queries.controls import (
    Propagation,
    evaluate_rollback_triggers,
    get_propagation,
    list_instances,
    list_shop_names,
    preview_kill,
)
from core.queries.settings import get_activation_state
from core.services import controls, rollbacks
from core.uow import UnitOfWork
from dashboard import components, control_widgets
from dashboard.rollback_widgets import reason_form

actor = components.page_guard(Permission.CONTROL_SYSTEM, "Controls")
st.title("Controls")
with read_session() as s:
    state = get_activation_state(s)
    triggers = evaluate_rollback_triggers(s, actor=actor)
    impact = preview_kill(s, actor=actor)
    shops = list_shop_names(s, actor=actor)
    instances = list_instances(s, actor=actor)
seen = control_widgets.seen_version(state)  # before any form: what this tab's forms were filled in against

fired = [t for t in triggers if t.fired]
if fired:
    st.error("Rollback trigger fired: " + "; ".join(t.said() for t in fired))
    if state.running:  # stopping every agent takes a reason, like the kill switch: the trigger may be a false alarm
        form = reason_form("trigger_rollback", "Immediate rollback now", primary=True)
        if form is not None:
            said = form["reason"].strip()
            reason = f"{said} (rollback trigger: {', '.join(t.key for t in fired)})" if said else ""
            run = components.act(lambda: rollbacks.start_immediate_rollback(actor=actor, reason=reason,
                                                                            uow=UnitOfWork()))
            if run:
                run.done(reset=("trigger_rollback",),
                         keep={"propagating": (run.value.details["settings_version"], run.value.started_at)})


@st.dialog("Turn the agent system off?")
def confirm_kill(version: int) -> None:
    st.write(f"{impact['in_flight']} conversations in flight will finish; no new one will start.")
    pending = sum(impact["pending_by_type"].values())
    st.write(f"{pending} pending conversations in {impact['shops_affected']} shops wait:")
    st.dataframe([{"agent type": k, "pending": v} for k, v in sorted(impact["pending_by_type"].items())],
                 hide_index=True)
    key = components.form_key("kill")
    with st.form(key):
        reason = st.text_input("Reason (required)", key=f"{key}_reason")
        if st.form_submit_button("Turn off now", type="primary"):
            new = components.act(lambda: controls.engage_kill_switch(actor=actor, reason=reason, uow=UnitOfWork(),
                                                                     expected_version=version))
            if new:
                control_widgets.applied("kill", new)
            with read_session() as s:
                changed = get_activation_state(s).version != version
            if changed:  # someone else switched meanwhile: close, and draw the page as it is now (it stayed stale)
                st.session_state["kill_refused"] = new.error
                st.rerun()


st.subheader("Kill switch")
if refused := st.session_state.pop("kill_refused", None):
    st.warning(components.plain_md(refused))
control_widgets.state_banner(state)
if state.running:
    if st.button("Turn off…", type="primary", key="kill_open"):
        confirm_kill(state.version)
elif "propagating" not in st.session_state:
    st.caption("Switch it back on below, with limited or full scope.")


def read_propagation() -> Propagation:
    version, changed_at = st.session_state["propagating"]
    with read_session() as s:
        return get_propagation(s, actor=actor, version=version, changed_at=changed_at)


@components.live_fragment(run_every=1)
def follow_propagation() -> None:
    """Every second while a live worker has yet to see the change; once none has, the page draws the outcome
    once and stops asking (it asked every second for as long as the tab stayed open)."""
    prop = read_propagation()
    if prop.complete:
        st.rerun(scope="app")
    st.info(prop.sentence())


if "propagating" in st.session_state:
    done = read_propagation()
    if done.complete:
        st.success(done.sentence())
    else:
        follow_propagation()

st.subheader("Activation scope")
control_widgets.activation_form(actor, state, shops, seen)
st.subheader("Agent types")
control_widgets.agent_type_form(actor, state, AGENT_TYPES, seen)
st.subheader("Agent instances")
control_widgets.instance_form(actor, instances)
st.subheader("Rollback triggers")
st.dataframe([{"trigger": t.label, "now": t.shown(t.value), "limit": t.shown(t.threshold),
               "fired": "YES" if t.fired else "no", "detail": t.detail} for t in triggers], hide_index=True,
             width="stretch")
