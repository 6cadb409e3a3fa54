"""The role → pages table: one place decides which pages a user sees. Each page checks again."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.auth import Actor, Permission

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    permission: Permission
    url_path: str

    @property
    def path(self) -> str:
        return str(PAGES_DIR / self.file)


PAGES = [
    PageSpec("health.py", "Agent health", ":material/monitor_heart:", Permission.VIEW_HEALTH, "health"),
    PageSpec("conversations.py", "Conversations", ":material/forum:", Permission.READ_CONVERSATIONS, "conversations"),
    PageSpec("review.py", "Review queues", ":material/rate_review:", Permission.READ_CONVERSATIONS, "review"),
    PageSpec("checklist.py", "Checklist", ":material/checklist:", Permission.VIEW_HEALTH, "checklist"),
    PageSpec("alerts.py", "Alerts", ":material/notifications:", Permission.VIEW_HEALTH, "alerts"),
    PageSpec("controls.py", "Controls", ":material/power_settings_new:", Permission.CONTROL_SYSTEM, "controls"),
    PageSpec("rollbacks.py", "Rollbacks", ":material/history:", Permission.ROLLBACK, "rollbacks"),
    PageSpec("audit.py", "Audit log", ":material/receipt_long:", Permission.READ_AUDIT, "audit"),
    PageSpec("users.py", "Users and tokens", ":material/group:", Permission.MANAGE_USERS, "users"),
]


# Streamlit serves the first page at / only, yet reserves its url_path: it gets this internal one, and a hidden page at
# its public name (/health) sends a typed or bookmarked link there instead of to "Page not found".
HOME_URL_PATH = "home"


def build_navigation(actor: Actor) -> st.navigation:
    """Pages ACTOR may use are listed; the others stay reachable by URL only to show a refusal."""
    pages = [st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=HOME_URL_PATH if i == 0 else spec.url_path,
                     default=i == 0, visibility="visible" if actor.can(spec.permission) else "hidden")
             for i, spec in enumerate(PAGES)]
    home = pages[0]
    alias = st.Page(lambda: st.switch_page(home), title=PAGES[0].title, url_path=PAGES[0].url_path,
                    visibility="hidden")
    nav = st.navigation([*pages, alias])
    visible = [p for p in pages if p.visibility == "visible"]
    if len(visible) == 1:  # Streamlit hides a one-page menu; the sidebar keeps the way back all the same
        with st.sidebar:
            st.page_link(visible[0])
    return nav


def signed_out_navigation(render_sign_in: Callable[[], None]) -> st.navigation:
    """Signed out, every page's address shows the sign-in form; once signed in, the same address (with its query,
    e.g. ?conversation=12) opens the page. Without these, a shared link answered "Page not found"."""
    first = st.Page(render_sign_in, title="Sign in", icon=":material/login:", default=True)
    addresses = [HOME_URL_PATH, *(spec.url_path for spec in PAGES)]
    return st.navigation([first, *(st.Page(render_sign_in, title="Sign in", url_path=path, visibility="hidden")
                                   for path in addresses)], position="hidden")


def links_for(actor: Actor) -> None:
    """Links to the pages ACTOR may open (the way back from a refusal)."""
    for spec in PAGES:
        if actor.can(spec.permission):
            st.page_link(spec.path, label=spec.title, icon=spec.icon)
