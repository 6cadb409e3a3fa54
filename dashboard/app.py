"""Console entrypoint: `streamlit run dashboard/app.py`."""
from __future__ import annotations

import streamlit as st

from core.config import SettingsError, get_settings
from core.sentry import init_sentry
from dashboard import alert_widgets, components, context, control_widgets, signin
from dashboard.navigation import build_navigation, signed_out_navigation

st.set_page_config(page_title="BookedBarber Agent Ops", page_icon=":material/content_cut:", layout="wide")
try:
    settings = get_settings()
except SettingsError as exc:
    st.error(f"The console cannot start: {exc}")
    st.stop()
init_sentry(settings, component="console")  # once per process; nothing without SENTRY_DSN

components.start_run()
try:
    signed = components.with_database(context.current, fallback=st.session_state.get("agentops_signed_in"))
    if signed is None:
        if not st.session_state.get(components.SHOWN):  # with the database down there is no one to sign in
            components.run_page(signed_out_navigation(signin.render_sign_in))
        st.stop()
    st.session_state["agentops_signed_in"] = signed
    context.keep_state_for(signed.actor.username)
    context.persist(signed)
    page = build_navigation(signed.actor)  # first: its menu (or its one link) heads the sidebar
    components.identity_sidebar(signed, settings.environment)
    control_widgets.sidebar_state()  # every role: is the agent system on, limited or stopped
    alert_widgets.sidebar_count(signed.actor)  # every role: how many alerts fire now (cached for a few seconds)
    signin.render_sign_out(signed.token)
    components.run_page(page)
finally:
    components.end_run()
