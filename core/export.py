"""CSV exports that a spreadsheet opens as data: no cell is ever run as a formula.

A user name like `=HYPERLINK(...)` reaches the audit log as text; Excel, LibreOffice and Google Sheets would run it
when the admin opens the export. Every text cell that starts with = + - @, a tab or a carriage return gets a
leading apostrophe (OWASP's advice), which spreadsheets show as text. Use csv_bytes for every export."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """VALUE as a CSV cell: text that a spreadsheet would evaluate is prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, default=str, ensure_ascii=False)
    elif isinstance(value, (datetime, date)):
        value = value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_bytes(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> bytes:
    """ROWS as UTF-8 CSV with a header (COLUMNS, or the first row's keys), every cell made safe."""
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(c) for c in columns])
    for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
    return out.getvalue().encode()
