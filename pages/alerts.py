"""Alerts: what fires, pends or is silenced (with its age and the conversations behind it), the state history,
rules, contact points, silences and the delivery log. Engineers and admins edit, silence, acknowledge and mitigate."""
from __future__ import annotations

import streamlit as st

from core.auth import Permission
from core.db import read_session
from core.queries import alerts as q
from dashboard import alert_widgets as w
from dashboard import components

actor = components.page_guard(Permission.VIEW_HEALTH, "Alerts")
can_edit = actor.can(Permission.CHECKLIST)
st.title("Alerts")
if said := st.session_state.pop("alerts_said", None):  # what the last action did, once
    st.success(components.plain_md(said))
with read_session() as s:
    shown = q.list_alerts(s, actor=actor)
    history = q.list_history(s, actor=actor, hours=24)
    rules = q.list_rules(s, actor=actor)
    contacts = q.list_contacts(s, actor=actor)
    silences = q.list_silences(s, actor=actor)
    deliveries = q.list_deliveries(s, actor=actor, limit=50)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min {int(seconds % 60)} s"


firing = [a for a in shown if a["state"] == "firing" and not a["silenced_by"]]
pending = [a for a in shown if a["state"] == "pending" and not a["silenced_by"]]
silenced = [a for a in shown if a["silenced_by"]]
c = st.columns(3)
c[0].metric("Firing", len(firing))
c[1].metric("Pending", len(pending))
c[2].metric("Silenced", len(silenced))
if actor.shop_ids is not None:  # the health page is scoped to these shops; a rule without a shop is not
    st.caption(f"You see the rules of your shops ({', '.join(map(str, sorted(actor.shop_ids)))}) and the rules "
               "without a shop, whose values are over all shops.")
if not rules:
    st.info("No alert rules yet: `python -m core alerts run` (started by `make run`) installs the checklist's "
            "default rules, or `python -m core alerts defaults`.")

st.subheader("Firing, pending and silenced")
if shown:
    st.dataframe([{"id": a["id"], "state": "silenced" if a["silenced_by"] else a["state"], "severity": a["severity"],
                   "rule": a["name"], "value": a["value"], "condition": a["threshold"], "age": _age(a["age_s"]),
                   "acknowledged by": a["acked_by"] or "", "comment": a["ack_comment"] or "",
                   "conversations": a["link"]} for a in shown], hide_index=True, width="stretch",
                 column_config={"conversations": st.column_config.LinkColumn("conversations",
                                                                             display_text="open conversations")})
    if can_edit:
        w.act_form(actor, shown)
else:
    st.success("Nothing is firing or pending.")

st.subheader("History (24 h)")
fig = w.timeline(history)
if fig is None:
    st.caption("No state changes in the last 24 hours.")
else:
    st.plotly_chart(fig, width="stretch")

st.subheader("Rules")
st.dataframe(rules, hide_index=True, width="stretch")
if can_edit:
    # Keyed, its open state lives in the session: a save's rerun redrew it folded away before.
    with st.expander("Add or edit a rule", key="alert_rule_editor_open", on_change="rerun"):
        keys = [r["key"] for r in rules]
        held = st.session_state.get("alert_rule_pick")
        # A rule removed by someone else stays chosen: its form, and what was typed in it, stay on screen, and
        # Save says what happened (a choice that left the list fell back to a blank new rule and lost the click).
        gone = [held] if held and held != w.NEW_RULE and held not in keys else []
        picked = st.selectbox("Rule", [w.NEW_RULE, *keys, *gone], key="alert_rule_pick")
        with read_session() as s:
            rule = None if picked == w.NEW_RULE else q.get_rule(s, actor=actor, key=picked)
        w.rule_form(actor, picked, rule)
        w.remove_form(actor, "rule", [r["key"] for r in rules])

st.subheader("Contact points")
if contacts:
    st.dataframe(contacts, hide_index=True, width="stretch")
else:
    st.caption("No contact point: set ALERT_WEBHOOK_URL or ALERT_EMAIL_TO (with SENDGRID_API_KEY), or add one here.")
if can_edit:
    w.test_form(actor, [c["name"] for c in contacts if c["enabled"]])
    with st.expander("Add or change a contact point", key="alert_contact_editor_open", on_change="rerun"):
        w.contact_form(actor)
        w.remove_form(actor, "contact point", [c["name"] for c in contacts if c["from"] == "database"])

st.subheader("Silences")
if silences:
    st.dataframe(silences, hide_index=True, width="stretch")
else:
    st.caption("No silence in force or ended in the last day.")
if can_edit:
    w.silence_forms(actor, silences)

st.subheader("Delivery log")
if deliveries:
    st.dataframe(deliveries, hide_index=True, width="stretch")
else:
    st.caption("No notification sent yet.")
