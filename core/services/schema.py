"""The checklist's database steps: setup, verify, cleanup (with a backup first) and restore."""
from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Date, DateTime, Engine, Numeric, func, insert, inspect, select, text
from sqlalchemy.exc import OperationalError

from core import audit
from core.auth import Actor, Permission
from core.config import get_settings
from core.db import is_postgres
from core.errors import Conflict, DatabaseUnavailable, UserInputError
from core.migrate import current_revision, head_revision, upgrade_to_head
from core.models import AgentSettings, Base, HealthProbe, agent_tables, utcnow
from core.models.base import UTCDateTime
from core.services.guard import require
from core.uow import UnitOfWork

BACKUP_FORMAT = "agentops-agent-tables"


@dataclass
class VerifyReport:
    ok: bool
    present: list[str]
    missing: list[str]
    revision: str | None
    head: str
    round_trip_ms: float | None = None
    problems: list[str] = field(default_factory=list)


def _missing_agent_tables(engine: Engine) -> list[str]:
    existing = set(inspect(engine).get_table_names())
    return [t for t in agent_tables() if t not in existing]


def setup_database(*, actor: Actor, engine: Engine) -> tuple[str | None, str, list[str]]:
    """Bring the database to the newest revision and recreate agent tables a cleanup removed; idempotent."""
    try:
        before, after = upgrade_to_head(engine)
        missing = _missing_agent_tables(engine)
        if missing:
            Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in missing])
    except OperationalError as exc:
        raise DatabaseUnavailable(f"Cannot reach the database: {_first_line(exc)}") from None
    with UnitOfWork(engine) as uow:
        if uow.session.get(AgentSettings, 1) is None:
            uow.session.add(AgentSettings(id=1, version=1, mode="off", changed_by="system", reason="initial state"))
        if before != after or missing:
            audit.append(uow.session, actor=actor, action="db.setup", target=engine.url.database or "",
                         before={"revision": before}, after={"revision": after, "recreated": missing})
        uow.commit()
    return before, after, missing


def verify_database(engine: Engine) -> VerifyReport:
    """List the agent tables, compare the schema with the code, and do a write/read round trip."""
    try:
        existing = set(inspect(engine).get_table_names())
        revision = current_revision(engine)
    except OperationalError as exc:
        raise DatabaseUnavailable(f"Cannot reach the database: {_first_line(exc)}") from None
    wanted = agent_tables()
    report = VerifyReport(ok=True, present=[t for t in wanted if t in existing],
                          missing=[t for t in wanted if t not in existing], revision=revision, head=head_revision())
    if report.missing:
        report.problems.append(f"missing agent tables: {', '.join(report.missing)} (run `python -m core db setup`)")
    if revision != report.head:
        report.problems.append(f"schema at revision {revision or 'none'}, code expects {report.head}")
    if "agent_health_probes" in existing:
        report.round_trip_ms = _round_trip(engine)
    report.ok = not report.problems
    return report


def _round_trip(engine: Engine) -> float:
    """Write a row and read it back inside a transaction that is rolled back."""
    started = time.perf_counter()
    with engine.connect() as conn, conn.begin() as tx:
        marker = f"verify-{time.time_ns()}"
        conn.execute(insert(HealthProbe).values(url=marker, checked_at=utcnow(), ok=True))
        found = conn.execute(select(HealthProbe.id).where(HealthProbe.url == marker)).first()
        tx.rollback()
    if found is None:
        raise DatabaseUnavailable("The database accepted a write but did not return it on read.")
    return (time.perf_counter() - started) * 1000


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per agent table (what a cleanup would remove)."""
    existing = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {t: conn.execute(select(func.count()).select_from(Base.metadata.tables[t])).scalar_one()
                for t in agent_tables() if t in existing}


def _encode(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def write_backup(engine: Engine, directory: Path) -> tuple[Path, dict[str, int]]:
    """Dump every agent table to a gzip JSON-lines file; returns its path and the rows per table."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"agent-tables-{utcnow():%Y%m%dT%H%M%S%f}.jsonl.gz"
    existing, counts = set(inspect(engine).get_table_names()), {}
    with gzip.open(path, "wt", encoding="utf-8") as out, engine.connect() as conn:
        out.write(json.dumps({"format": BACKUP_FORMAT, "revision": current_revision(engine),
                              "written_at": utcnow().isoformat()}) + "\n")
        for name in agent_tables():
            if name not in existing:
                continue
            table, n = Base.metadata.tables[name], 0
            for row in conn.execution_options(yield_per=5000).execute(select(table)).mappings():
                out.write(json.dumps({"t": name, "r": {k: _encode(v) for k, v in row.items()}}) + "\n")
                n += 1
            counts[name] = n
    return path, counts


def cleanup_agent_tables(*, actor: Actor, uow: UnitOfWork, confirm: str | None = None,
                         backup_dir: Path | None = None) -> tuple[Path, dict[str, int]]:
    """Back up, then drop only the agent tables (the checklist's --mode=cleanup); shops and clients stay."""
    env = get_settings().environment
    if env == "production" and confirm != "production":
        raise UserInputError("In production the cleanup needs the environment name typed to confirm: --confirm production.")
    engine = uow.engine
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="db.cleanup", target=engine.url.database or "")
    path, counts = write_backup(engine, backup_dir or Path(get_settings().backup_dir))
    with uow:
        for name in reversed(agent_tables()):
            if name in counts:
                uow.session.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
        audit.append(uow.session, actor=actor, action="db.cleanup", target=engine.url.database or "",
                     reason=f"backup {path}", before={"rows": counts}, after={"backup": str(path)})
        uow.commit()
    return path, counts


def _decode_row(table_name: str, row: dict[str, Any]) -> dict[str, Any]:
    """Turn a backup row's JSON values back into the column types."""
    table = Base.metadata.tables[table_name]
    out = {}
    for key, value in row.items():
        col_type = table.c[key].type
        if value is not None and isinstance(col_type, (UTCDateTime, DateTime)):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(col_type, Date):
            value = date.fromisoformat(value)
        elif value is not None and isinstance(col_type, Numeric):
            value = Decimal(value)
        out[key] = value
    return out


def restore_agent_tables(*, actor: Actor, uow: UnitOfWork, path: Path) -> dict[str, int]:
    """Recreate the agent tables from a cleanup backup; refuses to overwrite tables that hold rows."""
    rows_by_table = _read_backup(path)
    engine = uow.engine
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="db.restore", target=str(path))
        Base.metadata.create_all(uow.session.connection(), tables=[Base.metadata.tables[t] for t in agent_tables()])
        busy = [t for t in rows_by_table if t != "agent_settings" and uow.session.execute(
            select(func.count()).select_from(Base.metadata.tables[t])).scalar_one()]
        if busy:
            raise Conflict(f"Tables {', '.join(busy)} already hold rows; run the cleanup first or restore elsewhere.")
        uow.session.execute(Base.metadata.tables["agent_settings"].delete())
        for name in agent_tables():
            rows = rows_by_table.get(name, [])
            for start in range(0, len(rows), 2000):
                uow.session.execute(insert(Base.metadata.tables[name]), rows[start:start + 2000])
        if is_postgres(engine):
            _reset_sequences(uow, list(rows_by_table))
        counts = {t: len(r) for t, r in rows_by_table.items()}
        audit.append(uow.session, actor=actor, action="db.restore", target=str(path), after={"rows": counts})
        uow.commit()
    return counts


def _read_backup(path: Path) -> dict[str, list[dict[str, Any]]]:
    if not path.exists():
        raise UserInputError(f"No backup file at {path}.")
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        with gzip.open(path, "rt", encoding="utf-8") as src:
            header = json.loads(src.readline())
            if header.get("format") != BACKUP_FORMAT:
                raise UserInputError(f"{path} is not an agent-table backup written by `db cleanup`.")
            for line in src:
                item = json.loads(line)
                rows.setdefault(item["t"], []).append(_decode_row(item["t"], item["r"]))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise UserInputError(f"{path} cannot be read as a backup ({type(exc).__name__}).") from None
    return rows


def _reset_sequences(uow: UnitOfWork, tables: list[str]) -> None:
    """After inserting explicit ids, move each serial sequence past the largest id."""
    for name in tables:
        if "id" in Base.metadata.tables[name].c:
            uow.session.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM \"{name}\"), 0) + 1, false)"))


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]
