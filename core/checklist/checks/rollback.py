"""The database rollback's backup: the newest one is readable and restores into scratch copies of the agent tables
in the deployment's own database."""
from __future__ import annotations

from pathlib import Path

from core.backup_restore import restore_into_scratch
from core.checklist.outcome import CheckContext, Outcome, failed, passed
from core.errors import UserInputError


def newest_backup(directory: Path) -> Path | None:
    """The newest complete backup file in DIRECTORY, if any."""
    files = sorted(directory.glob("agent-tables-*.jsonl.gz")) if directory.is_dir() else []
    return files[-1] if files else None


def check_backup_restorable(ctx: CheckContext) -> Outcome:
    """The newest backup in BACKUP_DIR reads whole (checksum included) and restores into temporary copies of the agent
    tables in the deployment's own database (rolled back)."""
    directory = Path(ctx.settings.backup_dir)
    path = newest_backup(directory)
    if path is None:
        return failed("backup restorable", None, f"no backup in {directory}: `python -m core db cleanup` writes one "
                                                 "first; a database rollback needs one")
    try:
        counts = restore_into_scratch(ctx.engine, path)
    except UserInputError as exc:
        return failed("backup restorable", {"file": path.name}, str(exc))
    return passed("backup restorable", {"file": path.name, "rows": sum(counts.values()), "tables": len(counts)},
                  f"{path.name}: {sum(counts.values())} rows in {len(counts)} tables restored into temporary copies of "
                  "the agent tables, then rolled back")
