"""The read replica on the pages: a banner when reads fell back to the primary, and a small lag panel."""
from __future__ import annotations

import streamlit as st

from core.queries.replica import ReplicaStatus
from core.read_routing import Route

FALLBACK_BANNER = "Reading from the primary: the read replica is unreachable."


def fallback_banner(route: Route | None) -> None:
    """Say that these figures were read from the primary because the replica did not answer."""
    if route is not None and route.fallback:
        st.warning(FALLBACK_BANNER + " Figures are current; the replica is tried again every few seconds.",
                   icon=":material/sync_problem:")


def replica_panel(status: ReplicaStatus | None) -> None:
    """Where lag-tolerant reads go and how far behind the replica is (nothing when the database is down)."""
    if status is None:
        return
    st.subheader("Read replica")
    if not status.configured:
        st.caption("No read replica is configured (DATABASE_READ_URL): every read goes to the primary.")
        return
    if not status.reachable:
        st.text(status.problem or FALLBACK_BANNER)
        return
    cols = st.columns(3)
    lag = "–" if status.lag_seconds is None else f"{status.lag_seconds:,.1f} s"
    cols[0].metric("Replica lag", lag, help="Age of the last transaction the replica applied, 0 when caught up.")
    cols[1].metric("WAL behind", "–" if status.lag_bytes is None else f"{status.lag_bytes:,} bytes")
    cols[2].metric("Replay", "paused" if status.replay_paused else "running")
    if status.problem:
        st.text(status.problem)
    st.text(f"Health figures and the audit log are read from {status.url}; writes, sessions and the kill switch "
            "always use the primary.")
