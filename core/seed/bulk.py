"""Fast inserts: COPY on PostgreSQL, batched executemany elsewhere."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, text

from core.db import reset_id_sequence
from core.models import Base


def _csv_value(value: Any) -> Any:
    if value is None:
        return r"\N"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value)
    return value


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ROWS into TABLE: COPY … FROM STDIN on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(Base.metadata.tables[table]), [{c: r[c] for c in columns} for r in rows])
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    for r in rows:
        writer.writerow([_csv_value(r[c]) for c in columns])
    buf.seek(0)
    cols = ", ".join(f'"{c}"' for c in columns)
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.copy_expert(f'COPY "{table}" ({cols}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buf)


def next_id(conn: Connection, table: str) -> int:
    """One more than the largest id in TABLE."""
    return int(conn.execute(text(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')).scalar_one()) + 1


def reset_sequence(conn: Connection, table: str) -> None:
    """Move a PostgreSQL serial past the ids written explicitly."""
    reset_id_sequence(conn, table)


def vacuum_analyze(engine: Engine, tables: Sequence[str]) -> None:
    """VACUUM (ANALYZE) TABLES on PostgreSQL (their partitions too); ANALYZE on SQLite.

    After a bulk load, as autovacuum would do a little later: the visibility map lets index-only scans (Agent
    health's count of open conversations) skip the heap, and the hint bits are set once here rather than by the
    first readers. VACUUM cannot run inside a transaction, hence the autocommit connection."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        names = ", ".join(f'"{t}"' for t in tables)
        conn.execute(text(f"VACUUM (ANALYZE) {names}" if conn.dialect.name == "postgresql" else "ANALYZE"))
