"""Refusals name the action in words: every action a service checks a permission for has its phrase."""
from __future__ import annotations

import re
from pathlib import Path

from core.action_words import PHRASES, doing

CORE = Path(__file__).resolve().parents[2] / "core"


def test_every_checked_action_has_a_phrase() -> None:
    checked = set()
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        checked |= set(re.findall(r'(?:require|_conversation|authorize_read)\([^)]*?"([a-z_]+\.[a-z_.]+)"', text,
                                  flags=re.S))
    assert len(checked) > 30
    assert sorted(checked - set(PHRASES)) == []


def test_an_unlisted_action_reads_verb_first() -> None:
    assert doing("checklist.start") == "start a checklist run"
    assert doing("activation.limited") == "set the activation mode to limited"
    assert doing("alert_rule.archive") == "archive alert rule"
    assert doing("seed") == "seed the database"
