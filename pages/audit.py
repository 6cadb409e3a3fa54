"""Audit log: every control, sign-in, refusal and review, filterable, exportable, with its chain verified."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pandas as pd
import streamlit as st

from core import audit
from core.auth import Permission
from core.db import read_session
from core.export import csv_bytes
from core.queries.audit import COLUMNS, distinct_actions, list_audit
from core.read_routing import replica_session, route_of
from dashboard import components, replica_widgets

actor = components.page_guard(Permission.READ_AUDIT, "Audit log")
st.title("Audit log")
with replica_session() as s:  # a record written a moment ago may appear a moment later: the read replica is fine
    actions = distinct_actions(s, actor=actor)
cols = st.columns(5)
who = cols[0].text_input("Actor", help="A user name, exactly; end it with * for every name that starts so.").strip()
action = cols[1].selectbox("Action", [""] + actions, format_func=lambda a: a or "any")
target = cols[2].text_input("Target")
outcome = cols[3].selectbox("Outcome", ["", "ok", "refused", "failed"], format_func=lambda o: o or "any")
today = datetime.now(timezone.utc).date()
span = cols[4].date_input("Between (UTC)", value=(today - timedelta(days=7), today))
since = datetime.combine(span[0], time.min, tzinfo=timezone.utc) if span else None
# A start alone (the end not picked yet) is open-ended: it filtered to that one day while the end was being chosen.
until = datetime.combine(span[1], time.min, tzinfo=timezone.utc) + timedelta(days=1) if len(span) == 2 else None

with replica_session() as s:
    rows, total = list_audit(s, actor=actor, who=who, action=action, target=target, outcome=outcome,
                             since=since, until=until, limit=2000)
    replica_widgets.fallback_banner(route_of(s))
df = pd.DataFrame(rows)
st.caption(f"{len(rows):,} of {total:,} matching records (newest first; at most 2,000 shown and exported).")
if not df.empty:
    df["before"] = df["before"].astype(str)
    df["after"] = df["after"].astype(str)
st.dataframe(components.visible_in_table(df), hide_index=True, width="stretch")
st.download_button("Export CSV", csv_bytes(rows, COLUMNS), file_name="agent-audit-log.csv", mime="text/csv",
                   disabled=df.empty)
if st.button("Verify the hash chain"):
    with read_session() as s:  # the chain is checked where it is written
        result = audit.verify_chain(s)
    if result.ok:
        st.success(f"Chain intact: {result.checked:,} records.")
    else:
        st.error(f"Chain broken after {result.checked:,} good records: {result.problem}")
