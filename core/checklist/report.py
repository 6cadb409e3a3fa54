"""A run as a Markdown report (for the retrospective) and as JSON; both carry the same recorded facts."""
from __future__ import annotations

import json
from typing import Any

from core.checklist.catalogue import SECTIONS
from core.config import get_settings
from core.text import markdown_line

MARKS = {"pass": "x", "done": "x", "waived": "~", "warn": "x"}


def _cell(value: Any) -> str:
    """Evidence or a note, safe inside one Markdown line: no newline, pipe, tag, link, image or hidden control."""
    return markdown_line(value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True))


def item_line(state: Any) -> str:
    """One item as a Markdown task line: mark, title, status, evidence, who and when."""
    mark = MARKS.get(state.status, " ")
    line = f"- [{mark}] **{state.item.title}** `{state.item.id}` — {state.status.upper()}"
    if state.last is not None:
        ev = state.last.evidence
        if state.last.kind == "check" or state.last.kind == "blocked":
            line += f" · {_cell(ev.get('measured', ''))}: {_cell(ev.get('value'))} · {_cell(ev.get('detail', ''))}"
        else:
            line += f" · ticked: {_cell(state.last.note) or '(no note)'}"
        line += f" · by {state.last.actor} at {state.last.at:%Y-%m-%d %H:%M:%S} UTC"
    if state.waiver is not None:
        line += f" · waived by {state.waiver.actor} at {state.waiver.at:%Y-%m-%d %H:%M:%S} UTC: {_cell(state.waiver.note)}"
    return line


def to_markdown(state: Any) -> str:
    """The run as Markdown: header, verdict, every section with its items, emergency contacts."""
    done, total = state.progress
    lines = [f"# Staging checklist: {state.environment}, release {_cell(state.release)}", "",
             f"- Run: {state.id}, started by {state.started_by} at {state.started_at:%Y-%m-%d %H:%M:%S} UTC",
             f"- Deployed: {state.deployed_at:%Y-%m-%d %H:%M:%S} UTC" if state.deployed_at else "- Deployed: not marked",
             f"- Signed off: {state.signed_off_by} at {state.signed_off_at:%Y-%m-%d %H:%M:%S} UTC"
             + (f" ({_cell(state.sign_off_note)})" if state.sign_off_note else "") if state.signed_off_by
             else "- Signed off: no",
             f"- Progress: {done} of {total} items done", f"- Verdict: {_cell(state.verdict())}", ""]
    part = None
    for section in SECTIONS:
        if section.part != part:
            part = section.part
            lines += [f"## {part}", ""]
        lines += [f"### {section.title}", ""]
        lines += [item_line(s) for s in state.items if s.item.section == section.key] + [""]
    lines += ["## EMERGENCY CONTACTS", ""]
    lines += [f"- **{role}**: {_cell(contact)}" for role, contact in get_settings().emergency_contacts().items()]
    return "\n".join(lines) + "\n"


def to_json(state: Any) -> str:
    """The run as JSON (every item's current state, evidence and waiver; the contacts)."""
    return json.dumps({**state.as_dict(), "contacts": get_settings().emergency_contacts()}, indent=2, default=str)
