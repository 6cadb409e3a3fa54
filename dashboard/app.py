"""Console entrypoint: `streamlit run dashboard/app.py`."""
from __future__ import annotations

import streamlit as st

from dashboard.navigation import build_navigation

st.set_page_config(page_title="BookedBarber Agent Ops", page_icon="💈", layout="wide")
build_navigation().run()
