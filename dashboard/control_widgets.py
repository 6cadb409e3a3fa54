"""The Controls page's forms; each acts through one core service function, its reason and button in one form."""
from __future__ import annotations

from typing import Any, NoReturn

import pandas as pd
import streamlit as st

from core.auth import Actor
from core.queries.settings import ActivationState
from core.services import controls
from core.uow import UnitOfWork
from dashboard.components import Acted, act, form_key, nothing_picked, pick, plain_md, reset_form

SEEN_VERSION = "controls_seen_version"


def state_banner(state: ActivationState) -> None:
    """RUNNING or STOPPED as the live workers obey it, with who changed it, when and why."""
    from core.db import read_session
    from core.queries.settings import percent_candidates, with_workers_switch, workers_switch_line, workers_switched_off

    with read_session() as s:
        live, off = workers_switched_off(s)
        shops = percent_candidates(s, state)
    word, colour = ("RUNNING", "green") if with_workers_switch(state, live, off).running else ("STOPPED", "red")
    st.markdown(f":{colour}-background[**{word}**] mode **{state.mode}**, settings version {state.version}")
    last = f"Last change by {state.changed_by} at {state.changed_at:%Y-%m-%d %H:%M:%S} UTC: {state.reason}"
    st.text("\n".join([*state.scope_lines(shops), last]))  # a limited scope in full: "RUNNING mode limited" alone hid it
    if line := workers_switch_line(live, off):
        st.warning(_sentence(line))
    elif not live and not state.env_enabled:
        st.warning("AGENT_SYSTEM_ENABLED=false in this environment: the system stays off whatever is set here.")


def sidebar_state() -> None:
    """The switch for every role, on every page: RUNNING, LIMITED (with its scope) or STOPPED, read fresh (not
    cached: a kill must show at once). Agent health's numbers otherwise gave no hint why pending work climbed."""
    from core.db import read_session
    from core.queries.settings import as_workers_see_it, workers_switch_line
    from dashboard.components import DATABASE_ERRORS

    try:
        with read_session() as s:
            state, live, off = as_workers_see_it(s)
    except DATABASE_ERRORS:
        st.sidebar.caption("Agent system: unavailable")
        return
    if not state.running:
        word, colour = "STOPPED", "red"
    else:
        word, colour = ("LIMITED", "orange") if state.mode == "limited" else ("RUNNING", "green")
    st.sidebar.markdown(f"Agent system: :{colour}-badge[{word}]")
    if state.running and state.scope_lines():
        st.sidebar.caption(plain_md("; ".join(state.scope_lines())))
    if line := workers_switch_line(live, off):
        st.sidebar.caption(plain_md(_sentence(line)))


def _sentence(clause: str) -> str:
    return clause[0].upper() + clause[1:] + "."


def applied(form: str, new: Acted[Any]) -> NoReturn:
    """A settings change went through: follow its propagation, empty the form, draw the page again."""
    new.done(reset=(form,), keep={"propagating": (new.value.version, new.value.changed_at)})


def seen_version(state: ActivationState) -> int:
    """The settings version this tab showed before this run (the one its forms were filled in against)."""
    seen = st.session_state.get(SEEN_VERSION, state.version)
    st.session_state[SEEN_VERSION] = state.version
    return seen


def activation_form(actor: Actor, state: ActivationState, shops: dict[int, str], seen: int) -> None:
    """Off, limited (shops and types, or a stable percentage of shops) or full. Filled in against version SEEN:
    when another tab changed the settings meanwhile, Apply is refused with the typed values kept (the service's
    Conflict); without an Apply, the form is drawn again from the new state."""
    from core.models import AGENT_TYPES

    if seen != state.version and not st.session_state.get(f"{form_key('activation')}_apply"):
        reset_form("activation")
    key = form_key("activation")
    with st.form(key):
        mode = st.radio("Mode", ["off", "limited", "full"], index=["off", "limited", "full"].index(state.mode),
                        horizontal=True, key=f"{key}_mode")
        chosen = st.multiselect("Shops (limited)", list(shops), default=list(state.allowed_shops),
                                format_func=shops.get, key=f"{key}_shops")
        types = st.multiselect("Agent types (limited; none = all)", list(AGENT_TYPES),
                               default=list(state.allowed_agent_types), key=f"{key}_types")
        # No bounds on the box: with them the browser held back a submit of 150 without a word; the service
        # says what is wrong instead.
        # A decimal box, so that 12.7 reaches the service and is refused there (an integer box cut it to 12).
        percent = st.number_input("Or this percentage of shops (limited; 0 = use the list)", step=1.0,
                                  value=float(state.shop_percent or 0), format="%g", key=f"{key}_percent")
        reason = st.text_input("Reason (required)", key=f"{key}_reason")
        if st.form_submit_button("Apply", key=f"{key}_apply"):
            new = act(lambda: controls.set_activation(
                actor=actor, mode=mode, reason=reason, uow=UnitOfWork(), shops=chosen, agent_types=types,
                shop_percent=percent or None, expected_version=seen))
            if new and new.value.version == seen:  # the service records nothing when nothing changes
                st.info(f"Mode {mode} with this scope is already in force (version {seen}); nothing changed.")
            elif new:
                applied("activation", new)


def agent_type_form(actor: Actor, state: ActivationState, agent_types: tuple[str, ...], seen: int) -> None:
    """Disable a problematic agent type everywhere (or enable it again)."""
    key = form_key("agent_type")
    off = set(state.disabled_agent_types)
    with st.form(key):
        cols = st.columns([2, 1, 3])
        # Named without its state (the caption below lists the disabled ones): a state changed meanwhile would
        # empty the choice.
        agent_type = pick(cols[0], "Agent type", {t: t for t in agent_types}, key=f"{key}_type", what="an agent type")
        action = cols[1].radio("Action", ["Disable", "Enable"], key=f"{key}_action")
        reason = cols[2].text_input("Reason", key=f"{key}_reason")
        if st.form_submit_button("Apply to the agent type"):
            enable = action == "Enable"
            if agent_type is None:
                nothing_picked("an agent type", key=f"{key}_type")
                return
            if enable == (agent_type not in off):
                st.info(f"{agent_type} is already {'enabled' if enable else 'disabled'}; nothing changed.")
                return
            new = act(lambda: controls.set_agent_type_enabled(actor=actor, agent_type=agent_type, enabled=enable,
                                                              reason=reason, uow=UnitOfWork(),
                                                              expected_version=seen))
            if new:
                applied("agent_type", new)
    st.caption("Disabled: " + ", ".join(sorted(off)) if off else "Every agent type is enabled.")


def instance_form(actor: Actor, instances: list[dict[str, Any]]) -> None:
    """Pause or resume one agent instance; the table lists the paused ones and says so."""
    if not instances:
        st.info("No agent instances yet.")
        return
    idle = [i for i in instances if i["status"] != "active"]
    if idle:
        st.caption(f"{len(idle)} of {len(instances)} instances are not active:")
        st.dataframe(pd.DataFrame(idle), hide_index=True, width="stretch")
    else:
        st.caption(f"All {len(instances)} instances are active.")
    # The label names the instance, not its status: a status changed by someone else would empty the choice.
    labels = {i["id"]: f"#{i['id']} shop {i['shop']} {i['agent type']}" for i in instances}
    status = {i["id"]: i["status"] for i in instances}
    key = form_key("instance")
    with st.form(key):
        cols = st.columns([2, 1, 3])
        picked = pick(cols[0], "Instance", labels, key=f"{key}_pick", what="an instance")
        action = cols[1].radio("Action", ["Pause", "Resume"], key=f"{key}_action")
        reason = cols[2].text_input("Reason", key=f"{key}_reason")
        if st.form_submit_button("Apply to the instance"):
            target = "active" if action == "Resume" else "paused"
            if picked is None:
                nothing_picked("an instance", key=f"{key}_pick")
            elif not reason.strip():
                st.error("A reason is required for every change to the agent system.")
            elif status[picked] == target:
                st.info(f"Instance #{picked} is already {target}; nothing changed.")
            elif changed := act(lambda: controls.set_instance_status(actor=actor, instance_id=picked, status=target,
                                                                     reason=reason, uow=UnitOfWork())):
                # the form just emptied before, without a word
                changed.done(f"Instance {labels[picked]} is {target} now.", reset=("instance",))
