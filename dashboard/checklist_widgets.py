"""Render helpers of the Checklist page: sections with progress, item tables, evidence, the action forms."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import streamlit as st

from core.checklist.catalogue import ITEMS
from core.checklist.runner import ItemResult
from core.queries.checklist import RunState
from dashboard import components

ICONS = {"pass": "✅", "done": "✅", "warn": "⚠️", "waived": "〰️", "fail": "❌", "blocked": "⛔", "stale": "⌛",
         "pending": "⬜", "waiting": "⏳"}


def evidence_text(state: Any) -> str:
    """One line of evidence: what was measured, the value, the detail (as text, never markup)."""
    if state.last is None:
        return ""
    ev = state.last.evidence
    if state.last.kind == "tick":
        return f"ticked: {state.last.note or '(no note)'}"
    value = ev.get("value")
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"{ev.get('measured', '')}: {shown} · {ev.get('detail', '')}"


def item_rows(run: RunState, section: str) -> list[dict[str, Any]]:
    """The rows of one section's table."""
    rows = []
    for s in (s for s in run.items if s.item.section == section):
        rows.append({"": ICONS.get(s.status, ""), "status": s.status, "item": s.item.title, "id": s.item.id,
                     "kind": "auto" if s.item.automated else "manual", "evidence": evidence_text(s),
                     "last run": f"{s.last.at:%Y-%m-%d %H:%M:%S}" if s.last else "",
                     "by": s.last.actor if s.last else "",
                     "waiver": f"{s.waiver.actor}: {s.waiver.note}" if s.waiver else "",
                     "results": s.runs})
    return rows


def sections(run: RunState) -> None:
    """Every section: its title, a progress bar, and its items as a table (text only)."""
    part = None
    for section, done, total in run.section_progress():
        if section.part != part:
            part = section.part
            st.header(part, divider="gray")
        st.subheader(section.title)
        st.progress(done / total if total else 0.0, text=f"{done} of {total} done")
        st.dataframe(item_rows(run, section.key), hide_index=True, width="stretch",
                     column_config={"evidence": st.column_config.TextColumn(width="large")})


def evidence_viewer(run: RunState) -> None:
    """The full evidence of one item (log lines included), as JSON text."""
    labels = {s.item.id: f"{ICONS.get(s.status, '')} {s.item.title} ({s.item.id})" for s in run.items}
    chosen = st.selectbox("Show the evidence of", list(labels), format_func=labels.get, key="checklist_evidence")
    shown = run.by_id()[chosen]
    st.code(json.dumps(shown.as_dict(), indent=2, default=str), language="json")


def verdict(run: RunState) -> None:
    """Go / no-go in one sentence, naming the blocking items; the sign-off if there is one."""
    if run.signed_off_by:
        st.success(f"Signed off by {run.signed_off_by} at {run.signed_off_at:%Y-%m-%d %H:%M} UTC")
        if run.sign_off_note:
            st.text(f"Sign-off note: {run.sign_off_note}")  # a person's words: text, never markdown
    show = st.error if not run.go else (st.warning if run.open else st.success)
    show(run.verdict())
    done, total = run.progress
    st.progress(done / total if total else 0.0, text=f"Overall: {done} of {total} items done")


def run_all_with_progress(run_checks: Callable[..., list[ItemResult]], automated: int) -> None:
    """Run the checks with a live status panel: a progress bar and one line per finished item. Once they are
    recorded the page is drawn again with a sentence saying how many ran; a refusal leaves the panel as it ended."""
    with st.status(f"Running {automated} automated checks…", expanded=True) as panel:
        bar, seen = st.progress(0.0, text="starting"), []

        def shown(result: ItemResult) -> None:
            seen.append(result)
            bar.progress(min(1.0, len(seen) / automated), text=f"{len(seen)} of {automated}: {result.item_id}")
            st.text(f"{ICONS.get(result.status, '')} {result.status.upper():8} {result.item_id}  "
                    f"{result.evidence.get('detail', '')}")

        results = components.act(lambda: run_checks(on_result=shown))
        if results:  # said at once: closing the panel is a point where a click may stop the run (see Acted.done)
            failed = sum(r.status in ("fail", "blocked") for r in results.value)
            results.done(f"{len(results.value)} checks run and recorded; {failed} failed or blocked.")
        panel.update(label=f"{len(seen)} checks run before the refusal", state="error", expanded=True)


def item_form(can_act: bool) -> dict[str, str] | None:
    """One item: run it, tick it (with a note) or waive it (with a reason); the submitted choice, or None."""
    if not can_act:
        return None
    labels = {i.id: f"{i.title} ({i.id}, {'auto' if i.automated else 'manual'})" for i in ITEMS}
    key = components.form_key("checklist_item")
    with st.form(key):
        item = st.selectbox("Item", list(labels), format_func=labels.get, key=f"{key}_item")
        action = st.radio("Action", ["run", "tick", "waive"], horizontal=True, key=f"{key}_action",
                          help="run: automated items; tick: manual items; waive: any item, with a reason")
        text = st.text_input("Note (tick) or reason (waive); required", key=f"{key}_text")
        if st.form_submit_button("Apply"):
            return {"item": item, "action": action, "text": text}
    return None
