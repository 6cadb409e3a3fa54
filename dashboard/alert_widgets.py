"""The Alerts page's pieces: the sidebar count, the history timeline, and the forms (each one st.form that acts
through one core service; its error stays on screen until the person acts again)."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, NoReturn

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.alerts.metrics import METRICS
from core.alerts.rules import OPS, resolve
from core.auth import Actor
from core.db import read_session
from core.models import AGENT_TYPES, NO_DATA_MODES, SEVERITIES, AlertRule, utcnow
from core.queries.alerts import silence_sentence
from core.services import alerts
from core.uow import UnitOfWork
from dashboard.components import DATABASE_ERRORS, Acted, act, form_key, nothing_picked, pick, plain_md
from dashboard.data import TTL_SECONDS, _actor, scope_args

STATE_COLOURS = {"pending": "#f59e0b", "firing": "#dc2626", "resolved": "#16a34a", "normal": "#a3a3a3"}
ACTIONS = {"acknowledge": "Acknowledge", **alerts.MITIGATIONS}
NEW_RULE = "(new rule)"


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def firing_count(role: str, shops: tuple[int, ...] | None) -> int:
    """How many alerts fire for this scope (cached: every page's sidebar shows it)."""
    from core.db import get_engine, read_session
    from core.queries.alerts import count_firing

    with read_session(get_engine(read=True)) as s:
        return count_firing(s, actor=_actor(role, shops))


def sidebar_count(actor: Actor) -> None:
    """'Firing alerts: N' in the sidebar for every role; a database problem is the page's to report, not this line's."""
    try:
        n = firing_count(*scope_args(actor))
    except DATABASE_ERRORS:
        st.sidebar.caption("Firing alerts: unavailable")
        return
    st.sidebar.page_link(_alerts_page(), label=f"Firing alerts: {n}",
                         icon=":material/notifications_active:" if n else ":material/notifications:")


def _alerts_page() -> str:
    from dashboard.navigation import PAGES

    return next(p.path for p in PAGES if p.url_path == "alerts")


def timeline(history: list[dict[str, Any]], now: datetime | None = None) -> go.Figure | None:
    """One bar per alert and state, from each change to the next (the last one runs to now)."""
    if not history:
        return None
    now, rows, by_alert = now or utcnow(), [], {}
    for h in history:
        by_alert.setdefault(h["alert"], []).append(h)
    for changes in by_alert.values():
        for this, nxt in zip(changes, [*changes[1:], None]):
            rows.append({"alert": f"#{this['alert']} {this['rule']}", "state": this["to"], "start": this["at"],
                         "end": nxt["at"] if nxt else now})
    df = pd.DataFrame(rows)
    fig = px.timeline(df, x_start="start", x_end="end", y="alert", color="state", color_discrete_map=STATE_COLOURS)
    fig.update_layout(height=120 + 28 * df["alert"].nunique(), margin={"t": 40, "b": 10}, title="State history",
                      legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"})
    return fig


def act_form(actor: Actor, shown: list[dict[str, Any]]) -> None:
    """Acknowledge an alert or apply a mitigation to it."""
    labels = {a["id"]: f"#{a['id']} {a['rule']}" for a in shown}  # its state is in the table above
    key = form_key("alert_act")
    with st.form(key):
        cols = st.columns([2, 2, 3])
        alert_id = pick(cols[0], "Alert", labels, key=f"{key}_alert", what="an alert")
        action = cols[1].selectbox("Action", list(ACTIONS), format_func=ACTIONS.get, key=f"{key}_action")
        reason = cols[2].text_input("Reason or comment (required)", key=f"{key}_reason")
        if not st.form_submit_button("Apply to the alert", type="primary"):
            return
    if alert_id is None:
        nothing_picked("an alert", key=f"{key}_alert")
        return
    if action == "acknowledge":
        done = act(lambda: alerts.acknowledge_alert(actor=actor, alert_id=alert_id, comment=reason, uow=UnitOfWork()))
        sentence = f"Alert #{alert_id} acknowledged by {actor.username}."
    else:
        done = act(lambda: alerts.mitigate_alert(actor=actor, alert_id=alert_id, action=action, reason=reason,
                                                 uow=UnitOfWork()))
        sentence = done.value if done else ""
    if done:
        _done(done, "alert_act", sentence)


def _done(done: Acted[Any], form: str, sentence: str) -> NoReturn:
    firing_count.clear()  # the sidebar's cached count would contradict the page for a few seconds
    done.done(reset=(form,), keep={"alerts_said": sentence})


def rule_form(actor: Actor, picked: str, rule: AlertRule | None) -> None:
    """Create a rule, or edit the rule PICKED (RULE, or None when it has just been removed); the service validates
    it (one sentence, nothing saved) and refuses a save made from a form showing an older version."""
    new = picked == NEW_RULE
    r = alerts.rule_dict(rule) if rule else {}
    key = f"{form_key('alert_rule')}_{'new' if new else picked}"
    shown = st.session_state.setdefault("alert_rule_versions", {})
    drawn = shown.get(key)  # the version the person was looking at when they clicked, not the one read just now
    if rule is not None:
        shown[key] = rule.version
    in_force = _in_force(rule)
    with st.form(key):
        fields = {**_what_fields(key, r, in_force, editing=not new), **_how_fields(key, r)}
        if not st.form_submit_button("Save rule"):
            return
    spec = _follow_settings({**r, **fields}, r, in_force)
    if spec["shop_id"] is not None and not str(spec["shop_id"]).isdigit():
        st.error(plain_md(f"The shop id must be a number (got {spec['shop_id']!r})."))
        return
    expected = 0 if new else (drawn if drawn is not None else getattr(rule, "version", None))
    if saved := act(lambda: alerts.save_rule(actor=actor, spec=spec, uow=UnitOfWork(), expected_version=expected)):
        _done(saved, "alert_rule", f"Rule {spec['key']} saved.")


def _in_force(rule: AlertRule | None) -> dict[str, int]:
    """The window and pending period the evaluator uses now: a default rule's come from settings."""
    if rule is None:
        return {}
    resolved = resolve(rule)
    return {"window_minutes": int(resolved.scope.window_minutes), "pending_seconds": int(resolved.pending_seconds)}


def _follow_settings(spec: dict[str, Any], r: dict[str, Any], in_force: dict[str, int]) -> dict[str, Any]:
    """A number left as shown keeps following its setting; a number changed replaces the setting."""
    for name, setting in (("window_minutes", "window_setting"), ("pending_seconds", "pending_setting")):
        if r.get(setting):
            if spec[name] == in_force[name]:
                spec[name] = r[name]
            else:
                spec[setting] = None
    return spec


def _setting_help(r: dict[str, Any], setting: str, in_force: dict[str, int], name: str) -> str | None:
    if not r.get(setting):
        return None
    return (f"Follows the setting {r[setting]} (now {in_force[name]}). Leave it as it is to keep following it; "
            "a different number saved here replaces the setting for this rule.")


def _what_fields(key: str, r: dict[str, Any], in_force: dict[str, int], *, editing: bool) -> dict[str, Any]:
    """Key, name, metric, comparison and threshold; the window and the periods (as in force now)."""
    c = st.columns(4)
    out = {"key": c[0].text_input("Key", value=r.get("key", ""), key=f"{key}_key", disabled=editing),
           "name": c[1].text_input("Name", value=r.get("name", ""), key=f"{key}_name"),
           "metric": c[2].selectbox("Metric", list(METRICS), key=f"{key}_metric",
                                    index=list(METRICS).index(r.get("metric", "error_rate"))),
           "op": c[3].selectbox("Comparison", list(OPS), index=list(OPS).index(r.get("op", ">")), key=f"{key}_op")}
    c = st.columns(4)
    out.update(_threshold(c[0].text_input("Threshold (a number or a setting name)", key=f"{key}_threshold",
                                          value=r.get("threshold_setting") or _num(r.get("threshold")))))
    out["window_minutes"] = c[1].number_input(
        "Window (minutes)", value=in_force.get("window_minutes", int(r.get("window_minutes", 60))), key=f"{key}_window",
        help=_setting_help(r, "window_setting", in_force, "window_minutes"))
    out["pending_seconds"] = c[2].number_input(
        "Pending period (s)", value=in_force.get("pending_seconds", int(r.get("pending_seconds", 0))),
        key=f"{key}_pending", help=_setting_help(r, "pending_setting", in_force, "pending_seconds"))
    out["keep_firing_seconds"] = c[3].number_input("Keep firing for (s)", value=int(r.get("keep_firing_seconds", 0)),
                                                   key=f"{key}_keep")
    return out


def _how_fields(key: str, r: dict[str, Any]) -> dict[str, Any]:
    """Severity, no-data handling, scope and whether the rule is on."""
    c = st.columns(5)
    return {"severity": c[0].selectbox("Severity", SEVERITIES, key=f"{key}_severity",
                                       index=SEVERITIES.index(r.get("severity", "warning"))),
            "no_data": c[1].selectbox("No data", NO_DATA_MODES, key=f"{key}_nodata",
                                      index=NO_DATA_MODES.index(r.get("no_data", "ok"))),
            "agent_type": c[2].selectbox("Agent type", ["", *AGENT_TYPES], key=f"{key}_type",
                                         index=["", *AGENT_TYPES].index(r.get("agent_type") or "")) or None,
            "shop_id": c[3].text_input("Shop id", value=str(r.get("shop_id") or ""), key=f"{key}_shop").strip() or None,
            "enabled": c[4].checkbox("Enabled", value=r.get("enabled", True), key=f"{key}_enabled")}


def remove_form(actor: Actor, what: str, names: list[str]) -> None:
    """Remove a rule (with its alerts and their history) or a contact point kept in the database."""
    if not names:
        return
    key = form_key(f"alert_remove_{what}")
    with st.form(key):
        c = st.columns([3, 1])
        name = pick(c[0], f"Remove {what}", {n: n for n in names}, key=f"{key}_name", what=f"a {what}")
        if not c[1].form_submit_button(f"Remove {what}"):
            return
    if name is None:
        nothing_picked(f"a {what}", key=f"{key}_name")
        return
    remove = alerts.delete_rule if what == "rule" else alerts.delete_contact_point
    if removed := act(lambda: remove(actor=actor, **{"key" if what == "rule" else "name": name}, uow=UnitOfWork())):
        _done(removed, f"alert_remove_{what}", f"The {what} {name} was removed.")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _threshold(text: str) -> dict[str, Any]:
    try:
        number = float(text)
        # 1e400 or nan go to the service as typed, so its sentence quotes them (it said "got inf" for 1e400)
        return {"threshold": number if math.isfinite(number) else text.strip(), "threshold_setting": None}
    except ValueError:
        return {"threshold": None, "threshold_setting": text.strip().lower() or None}


def contact_form(actor: Actor) -> None:
    """Add or change a contact point kept in the database, with its routing."""
    key = form_key("alert_contact")
    with st.form(key):
        c = st.columns([1, 1, 3])
        name = c[0].text_input("Name", key=f"{key}_name")
        kind = c[1].selectbox("Kind", ["webhook", "email", "sentry"], key=f"{key}_kind")
        target = c[2].text_input("Webhook URL or e-mail address", key=f"{key}_target", type="password")
        c = st.columns(3)
        severity = c[0].selectbox("Lowest severity", SEVERITIES, index=1, key=f"{key}_severity")
        matchers = c[1].text_input("Label matchers (e.g. shop=1)", key=f"{key}_matchers")
        repeat = c[2].number_input("Repeat every (minutes, 0 = default)", min_value=0, value=0, key=f"{key}_repeat")
        if not st.form_submit_button("Save contact point"):
            return
    if saved := act(lambda: alerts.save_contact_point(actor=actor, name=name.strip(), kind=kind, target=target,
                                                      min_severity=severity, matchers=matchers.split(","),
                                                      repeat_minutes=float(repeat) or None, uow=UnitOfWork())):
        _done(saved, "alert_contact", f"Contact point {name.strip()} saved.")


_TEST_RESULTS = "alert_test_last"  # the last test notification's outcome, shown under its form until the next one


def test_form(actor: Actor, names: list[str]) -> None:
    """Send a test notification to one contact point or all, and say what happened to each."""
    key = form_key("alert_test")
    with st.form(key):
        picked = st.selectbox("Contact point", ["(all)", *names], key=f"{key}_contact")
        sending = st.form_submit_button("Send test notification")
    if sending:
        with st.spinner("Sending…"):
            sent = act(lambda: alerts.send_test_notification(actor=actor,
                                                             contact=None if picked == "(all)" else picked))
            if sent:  # inside the spinner: its closing is a point where a click may stop the run (Acted.done)
                sent.done(keep={_TEST_RESULTS: [{"contact point": r.contact, "delivered": r.ok,
                                                 "attempts": r.attempts, "error": r.error or ""}
                                                for r in sent.value]})
        st.session_state.pop(_TEST_RESULTS, None)  # an error said above replaces the last outcome
    if rows := st.session_state.get(_TEST_RESULTS):
        ok = sum(r["delivered"] for r in rows)
        (st.success if ok == len(rows) else st.error)(f"Test notification delivered to {ok} of {len(rows)} "
                                                      f"contact points.")
        st.dataframe(rows, hide_index=True, key="alert_test_results")


def silence_forms(actor: Actor, silences: list[dict[str, Any]]) -> None:
    """Create a silence; expire one that is in force."""
    key = form_key("alert_silence")
    with st.form(key):
        c = st.columns([3, 1, 3])
        matchers = c[0].text_input("Matchers (e.g. rule=error_rate, shop=1)", key=f"{key}_matchers")
        # No bounds on the box: with them the browser held back a submit of 0 without a word; the service says why.
        minutes = c[1].number_input("Minutes", value=60, key=f"{key}_minutes")
        reason = c[2].text_input("Reason (required)", key=f"{key}_reason")
        if st.form_submit_button("Create silence") and (made := act(lambda: alerts.create_silence(
                actor=actor, matchers=matchers, minutes=float(minutes), reason=reason, uow=UnitOfWork()))):
            with read_session() as s:
                said = silence_sentence(s, actor=actor, silence_id=made.value, matchers=matchers)
            _done(made, "alert_silence", said)
    active = [s["id"] for s in silences if s["active"]]
    if active:
        key = form_key("alert_expire")
        with st.form(key):
            sid = pick(st, "Silence", {i: f"#{i}" for i in active}, key=f"{key}_id", what="a silence")
            if not st.form_submit_button("Expire silence now"):
                return
        if sid is None:
            nothing_picked("a silence", key=f"{key}_id")
        elif expired := act(lambda: alerts.expire_silence(actor=actor, silence_id=sid, uow=UnitOfWork())):
            _done(expired, "alert_expire", f"Silence #{sid} expired.")
