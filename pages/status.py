"""System status: the kill switch and activation scope as the workers see them."""
from __future__ import annotations

import streamlit as st

from core.db import read_session
from core.queries.settings import get_activation_state

st.title("BookedBarber V2 agent system")
with read_session() as session:
    state = get_activation_state(session)
st.metric("Agent system", "RUNNING" if state.running else "STOPPED", help=f"settings version {state.version}")
st.text(f"Mode: {state.mode}. Last change by {state.changed_by}: {state.reason}")
