"""The Controls page's forms; each acts through one core service function."""
from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth import Actor
from core.db import read_session
from core.models import AgentInstance, Shop
from core.queries.settings import ActivationState
from core.services import controls
from core.uow import UnitOfWork
from dashboard.components import act


def shop_choices(session: Session) -> dict[int, str]:
    """Shop id → 'name (#id)' for pickers."""
    return {i: f"{name} (#{i})" for i, name in session.execute(select(Shop.id, Shop.name).order_by(Shop.id))}


def state_banner(state: ActivationState) -> None:
    """RUNNING or STOPPED, with who changed it, when and why."""
    word, colour = ("RUNNING", "green") if state.running else ("STOPPED", "red")
    st.markdown(f":{colour}-background[**{word}**] mode **{state.mode}**, settings version {state.version}")
    st.text(f"Last change by {state.changed_by} at {state.changed_at:%Y-%m-%d %H:%M:%S} UTC: {state.reason}")
    if not state.env_enabled:
        st.warning("AGENT_SYSTEM_ENABLED=false in this environment: the system stays off whatever is set here.")


def activation_form(actor: Actor, state: ActivationState, shops: dict[int, str]) -> None:
    """Off, limited (shops and types, or a stable percentage of shops) or full."""
    with st.form("activation"):
        mode = st.radio("Mode", ["off", "limited", "full"], index=["off", "limited", "full"].index(state.mode),
                        horizontal=True)
        chosen = st.multiselect("Shops (limited)", list(shops), default=list(state.allowed_shops),
                                format_func=shops.get)
        from core.models import AGENT_TYPES

        types = st.multiselect("Agent types (limited; none = all)", list(AGENT_TYPES),
                               default=list(state.allowed_agent_types))
        percent = st.number_input("Or this percentage of shops (limited; 0 = use the list)", 0, 100,
                                  value=state.shop_percent or 0)
        reason = st.text_input("Reason (required)")
        if st.form_submit_button("Apply"):
            new = act(lambda: controls.set_activation(
                actor=actor, mode=mode, reason=reason, uow=UnitOfWork(), shops=chosen, agent_types=types,
                shop_percent=int(percent) or None, expected_version=state.version))
            if new:
                st.session_state["propagating"] = (new.value.version, new.value.changed_at)
                st.rerun()


def agent_type_controls(actor: Actor, state: ActivationState, agent_types: tuple[str, ...]) -> None:
    """Disable a problematic agent type everywhere (or enable it again)."""
    cols = st.columns([2, 3, 1])
    agent_type = cols[0].selectbox("Agent type", agent_types, key="type_pick")
    reason = cols[1].text_input("Reason", key="type_reason")
    disabled = agent_type in state.disabled_agent_types
    if cols[2].button("Enable" if disabled else "Disable", key="type_toggle"):
        new = act(lambda: controls.set_agent_type_enabled(actor=actor, agent_type=agent_type, enabled=disabled,
                                                          reason=reason, uow=UnitOfWork(),
                                                          expected_version=state.version))
        if new:
            st.session_state["propagating"] = (new.value.version, new.value.changed_at)
            st.rerun()
    if state.disabled_agent_types:
        st.caption("Disabled: " + ", ".join(state.disabled_agent_types))


def instance_controls(actor: Actor) -> None:
    """Pause or resume one agent instance."""
    with read_session() as s:
        rows = s.execute(select(AgentInstance.id, AgentInstance.shop_id, AgentInstance.agent_type,
                                AgentInstance.status).order_by(AgentInstance.shop_id, AgentInstance.agent_type)).all()
    if not rows:
        st.info("No agent instances yet.")
        return
    df = pd.DataFrame(rows, columns=["id", "shop", "agent type", "status"])
    st.dataframe(df[df["status"] != "active"], hide_index=True, width="stretch")
    labels = {r.id: f"#{r.id} shop {r.shop_id} {r.agent_type} ({r.status})" for r in rows}
    cols = st.columns([3, 3, 1])
    picked = cols[0].selectbox("Instance", list(labels), format_func=labels.get, key="inst_pick")
    reason = cols[1].text_input("Reason", key="inst_reason")
    current = next(r.status for r in rows if r.id == picked)
    target = "active" if current != "active" else "paused"
    if cols[2].button("Resume" if target == "active" else "Pause", key="inst_toggle"):
        if act(lambda: controls.set_instance_status(actor=actor, instance_id=picked, status=target,
                                                    reason=reason or "console", uow=UnitOfWork())):
            st.rerun()
