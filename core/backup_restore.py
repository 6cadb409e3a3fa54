"""Writing a checked backup's rows back: into the agent tables (`db restore`), or into temporary copies of them in
the deployment's own database (the checklist's "backup restorable"), by the same code.

The scratch copies are temporary tables (`pg_temp` on PostgreSQL, `temp` on SQLite) made from the models inside
one transaction that is rolled back, so the check meets the deployment's own column types, constraints, sequences
and partitions, and leaves nothing behind. A scratch SQLite file did not: a PostgreSQL-only failure (a text id
given a sequence) passed the check and failed the restore."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError, StatementError
from sqlalchemy.schema import CreateIndex, CreateTable

from core.backups import Backup, read_backup
from core.bulk_load import BIG_TABLES, set_aside
from core.db import reset_id_sequence
from core.errors import UserInputError, first_line
from core.models import Base, agent_tables
from core.models.partitioning import PARTITION_KEYS, applies_to

BATCH = 2000  # rows per INSERT while a backup is streamed back
# From this many rows of conversations and messages, a restore on PostgreSQL sets their indexes and constraints
# aside and builds them once at the end (python -m bench restore: 84 → 74 s for 100,000 conversations).
REBUILD_INDEXES_FROM = 100_000
TEMP_SCHEMA = {"postgresql": "pg_temp", "sqlite": "temp"}


def insert_backup_rows(conn: Connection, backup: Backup, path: Path, settings: dict[str, Any] | None,
                       rebuild_indexes: bool = False) -> None:
    """Stream BACKUP's rows into the tables in batches (a large backup never sits in memory whole), then move each
    id sequence past its rows. SETTINGS, when given, replaces the file's own settings row. REBUILD_INDEXES (on
    PostgreSQL) sets the big tables' indexes and constraints aside while the rows go in, and builds them after."""
    if settings is not None:
        conn.execute(Base.metadata.tables["agent_settings"].delete())
        conn.execute(insert(Base.metadata.tables["agent_settings"]), [settings])
    # Messages of a backup made before revision 0011 take their conversation's created_at (their partition key).
    created: dict[int, Any] | None = {} if backup.messages_without_month else None
    rebuilt = set_aside(conn) if rebuild_indexes and conn.dialect.name == "postgresql" else []
    try:
        for name, rows in backup.batches(BATCH):
            if name == "agent_settings" and settings is not None:
                continue
            if created is not None:
                _with_conversation_months(name, rows, created)
            conn.execute(insert(Base.metadata.tables[name]), rows)
        for ddl in rebuilt:  # a duplicate key or a missing parent fails here, as its row would have
            conn.execute(ddl)
        for name in backup.counts:
            if "id" in Base.metadata.tables[name].c:
                reset_id_sequence(conn, name)
    except (IntegrityError, DataError, StatementError) as exc:
        if isinstance(exc, (OperationalError, ProgrammingError)):
            raise
        raise UserInputError(f"{path} cannot be restored: its rows do not fit the tables ({first_line(exc)}).") from None


def rebuilds_indexes(backup: Backup) -> bool:
    """True when BACKUP is large enough that building the big tables' indexes once beats keeping them current."""
    return sum(backup.counts.get(t, 0) for t in BIG_TABLES) >= REBUILD_INDEXES_FROM


def _with_conversation_months(name: str, rows: list[dict[str, Any]], created: dict[int, Any]) -> None:
    """Messages of a backup made before revision 0011 take their conversation's created_at (their partition key);
    the conversations come first in the file."""
    if name == "agent_conversations":
        created.update((r["id"], r.get("created_at")) for r in rows)
    elif name == "agent_messages":
        for r in rows:
            if r.get("conversation_created_at") is None:
                r["conversation_created_at"] = created.get(r.get("conversation_id"))


def restore_into_scratch(engine: Engine, path: Path) -> dict[str, int]:
    """Restore backup PATH into temporary copies of the agent tables in ENGINE's database, then roll it all back;
    returns rows per table. Raises UserInputError when the file is damaged or its rows do not fit."""
    backup = read_backup(path)
    schema = TEMP_SCHEMA[engine.dialect.name]
    with engine.connect() as conn:
        scratch = conn.execution_options(schema_translate_map={None: schema})
        try:
            with conn.begin() as transaction:
                _create_scratch_tables(scratch)
                insert_backup_rows(scratch, backup, path, settings=None)
                transaction.rollback()
        finally:
            _drop_scratch_tables(conn, schema)  # SQLite's DDL may outlive the rollback; a pooled connection keeps it
    return {t: n for t, n in backup.counts.items() if n}


def _create_scratch_tables(conn: Connection) -> None:
    """Each agent table as a temporary table, with its keys, checks and indexes for this database; foreign keys only
    between agent tables (the host's shops and clients are not copied), and a DEFAULT partition where partitioned.
    The models' after_create hooks are not run: they name the real tables."""
    names, dialect = set(agent_tables()), conn.dialect.name
    for name in agent_tables():
        table = Base.metadata.tables[name]
        keys = [fk for fk in table.foreign_key_constraints
                if fk.referred_table.name in names and applies_to(fk, dialect)]
        conn.execute(CreateTable(table, include_foreign_key_constraints=keys))
        for index in table.indexes:
            if applies_to(index, dialect):
                conn.execute(CreateIndex(index))
        if dialect == "postgresql" and name in PARTITION_KEYS:
            conn.execute(text(f'CREATE TEMPORARY TABLE "{name}_default" PARTITION OF pg_temp."{name}" DEFAULT'))


def _drop_scratch_tables(conn: Connection, schema: str) -> None:
    """Drop what is left of the scratch tables; always schema-qualified, so a real table is never named."""
    if conn.in_transaction():
        conn.rollback()
    for name in reversed(agent_tables()):
        conn.execute(text(f'DROP TABLE IF EXISTS {schema}."{name}"'))
    conn.commit()
