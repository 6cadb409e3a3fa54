"""The role → pages table: one place decides which pages a user sees."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent.parent / "pages"


def build_navigation() -> st.navigation:
    """The pages the current user may open."""
    return st.navigation([st.Page(str(PAGES / "status.py"), title="System status", icon="🟢", default=True)])
