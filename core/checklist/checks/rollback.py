"""The database rollback's backup: the newest one is readable and restores into a scratch database."""
from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import create_engine, insert

from core.backups import read_backup
from core.checklist.outcome import CheckContext, Outcome, failed, passed
from core.errors import UserInputError
from core.models import Base, agent_tables

BATCH = 2000


def newest_backup(directory: Path) -> Path | None:
    """The newest complete backup file in DIRECTORY, if any."""
    files = sorted(directory.glob("agent-tables-*.jsonl.gz")) if directory.is_dir() else []
    return files[-1] if files else None


def restore_into_scratch(path: Path) -> dict[str, int]:
    """Load backup PATH into a throwaway SQLite database with the agent tables; returns rows per table."""
    backup = read_backup(path)
    with tempfile.TemporaryDirectory(prefix="agentops-restore-") as scratch:
        engine = create_engine(f"sqlite:///{scratch}/scratch.db")  # no foreign keys: host tables are not copied
        try:
            tables = [Base.metadata.tables[t] for t in agent_tables()]
            Base.metadata.create_all(engine, tables=tables)
            with engine.begin() as conn:
                for name, rows in backup.batches(BATCH):  # streamed: a large backup never sits in memory whole
                    conn.execute(insert(Base.metadata.tables[name]), rows)
        finally:
            engine.dispose()
    return {t: n for t, n in backup.counts.items() if n}


def check_backup_restorable(ctx: CheckContext) -> Outcome:
    """The newest backup in BACKUP_DIR reads whole (checksum included) and restores into a scratch database."""
    directory = Path(ctx.settings.backup_dir)
    path = newest_backup(directory)
    if path is None:
        return failed("backup restorable", None, f"no backup in {directory}: `python -m core db cleanup` writes one "
                                                 "first; a database rollback needs one")
    try:
        counts = restore_into_scratch(path)
    except UserInputError as exc:
        return failed("backup restorable", {"file": path.name}, str(exc))
    return passed("backup restorable", {"file": path.name, "rows": sum(counts.values()), "tables": len(counts)},
                  f"{path.name}: {sum(counts.values())} rows in {len(counts)} tables restored into a scratch database")
