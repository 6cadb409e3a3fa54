"""The checklist's database steps: setup, verify, cleanup (with a backup first) and restore."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, inspect, select, text
from sqlalchemy.exc import OperationalError

from core import audit
from core.action_words import doing
from core.auth import Actor, Permission
from core.backup_restore import insert_backup_rows, rebuilds_indexes
from core.backups import BACKUP_FORMAT, Backup, database_origin, read_backup, write_backup
from core.config import get_settings
from core.errors import Conflict, DatabaseUnavailable, OperationFailed, PermissionDenied, UserInputError, first_line
from core.migrate import current_revision, head_revision, upgrade_to_head
from core.models import AgentSettings, AgentTemplate, Base, HealthProbe, agent_tables, utcnow
from core.seed.catalog import ensure_catalog
from core.services.guard import refuse, require
from core.uow import UnitOfWork

__all__ = ["BACKUP_FORMAT", "RestoreReport", "VerifyReport", "cleanup_agent_tables", "restore_agent_tables",
           "setup_database", "table_counts", "verify_database", "write_backup"]


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


def _require_before_schema(actor: Actor, engine: Engine, permission: Permission, *, action: str) -> None:
    """The permission check of a step that may run on an empty database: audited when the log exists."""
    if actor.can(permission):
        return
    if "agent_audit_log" in inspect(engine).get_table_names():
        with UnitOfWork(engine) as uow:
            require(uow, actor, permission, action=action, target=engine.url.database or "")
    raise PermissionDenied(f"{actor.username} ({actor.role.value}) may not {doing(action)}.")


def setup_database(*, actor: Actor, engine: Engine) -> tuple[str | None, str, list[str]]:
    """Bring the database to the newest revision and recreate agent tables a cleanup removed; idempotent."""
    try:
        _require_before_schema(actor, engine, Permission.CONTROL_SYSTEM, action="db.setup")
        before, after = upgrade_to_head(engine)
        missing = _missing_agent_tables(engine)
        if missing:
            Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in missing])
    except OperationalError as exc:
        raise DatabaseUnavailable(f"Cannot reach the database: {first_line(exc)}") from None
    with UnitOfWork(engine) as uow:
        if uow.session.get(AgentSettings, 1) is None:
            uow.session.add(AgentSettings(id=1, version=1, mode="off", changed_by="system", reason="initial state"))
        # The agents and their shipped templates: the worker renders the stored ones, and only `seed` wrote them.
        templates = _count(uow, AgentTemplate)
        ensure_catalog(uow.session)
        installed = _count(uow, AgentTemplate) - templates
        if before != after or missing or installed:
            audit.append(uow.session, actor=actor, action="db.setup", target=engine.url.database or "",
                         before={"revision": before},
                         after={"revision": after, "recreated": missing, "templates_installed": installed})
        uow.commit()
    return before, after, missing


def _count(uow: UnitOfWork, model: type) -> int:
    return uow.session.scalar(select(func.count()).select_from(model)) or 0


def verify_database(engine: Engine) -> VerifyReport:
    """List the agent tables, compare the schema with the code, and do a write/read round trip."""
    try:
        existing = set(inspect(engine).get_table_names())
        revision = current_revision(engine)
    except OperationalError as exc:
        raise DatabaseUnavailable(f"Cannot reach the database: {first_line(exc)}") from None
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


def cleanup_agent_tables(*, actor: Actor, uow: UnitOfWork, confirm: str | None = None,
                         backup_dir: Path | None = None, approved_run: int | None = None) -> tuple[Path, dict[str, int]]:
    """Back up, then drop only the agent tables (the checklist's --mode=cleanup); shops and clients stay. In
    production only an approved database rollback (APPROVED_RUN) drops them: a second engineer signs it off.

    When the backup cannot be written (a full disk), nothing is dropped, no partial file is left, and the failed
    attempt is audited."""
    env = get_settings().environment
    if env == "production" and confirm != "production":
        raise UserInputError("In production the cleanup needs the environment name typed to confirm: --confirm production.")
    engine, directory = uow.engine, backup_dir or Path(get_settings().backup_dir)
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="db.cleanup", target=engine.url.database or "")
        if env == "production" and approved_run is None:  # `db cleanup --yes` went around the second engineer
            refuse(uow, actor, action="db.cleanup", target=engine.url.database or "",
                   reason="production: not an approved database rollback",
                   message="In production the agent tables are dropped only by an approved database rollback: "
                           "`python -m core rollback database request --confirm production --reason …`, which a "
                           "second engineer approves and runs.")
    if not set(agent_tables()) & set(inspect(engine).get_table_names()):
        # A second cleanup would write an empty backup, the newest one: restoring "the latest" would restore nothing.
        raise Conflict(f"The agent tables are already gone: nothing to back up or drop (the backups in {directory} "
                       "are as they were).")
    try:
        path, counts = write_backup(engine, directory)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        _audit_failed_cleanup(uow, actor, f"backup to {directory} failed ({why}); nothing was dropped")
        raise OperationFailed(f"Could not write the backup to {directory} ({why}); nothing was dropped.") from None
    with uow:
        for name in reversed(agent_tables()):
            if name in counts:
                uow.session.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
        audit.append(uow.session, actor=actor, action="db.cleanup", target=engine.url.database or "",
                     reason=f"backup {path}", before={"rows": counts}, after={"backup": str(path)})
        uow.commit()
    return path, counts


def _audit_failed_cleanup(uow: UnitOfWork, actor: Actor, reason: str) -> None:
    try:
        with uow:
            audit.append(uow.session, actor=actor, action="db.cleanup", target=uow.engine.url.database or "",
                         outcome="failed", reason=reason)
            uow.commit()
    except OperationalError:  # the database may sit on the same full disk: the sentence still reaches the person
        pass


@dataclass(frozen=True)
class RestoreReport:
    counts: dict[str, int]
    file_sha256: str
    mode_in_backup: str | None  # what the backup's kill switch said; the restored system is always off
    settings_version: int


def restore_agent_tables(*, actor: Actor, uow: UnitOfWork, path: Path,
                         from_another_database: bool = False) -> RestoreReport:
    """Recreate the agent tables from a cleanup backup; refuses to overwrite tables that hold rows, and a backup of
    another database unless FROM_ANOTHER_DATABASE says that is meant.

    The file is checked whole before anything is written. The kill switch is restored OFF whatever the file says
    (scope and disabled types are kept), so a restore can never switch a stopped system back on."""
    with uow:
        require(uow, actor, Permission.ROLLBACK, action="db.restore", target=str(path))
    backup = read_backup(path)
    here = database_origin(uow.engine)
    if backup.origin not in (None, here) and not from_another_database:
        raise Conflict(f"{path} was written from another database ({backup.origin}), not this one ({here}), so "
                       "nothing was restored; if these tables belong here, restore with --from-another-database.")
    with uow:
        current = _current_settings(uow)
        Base.metadata.create_all(uow.session.connection(), tables=[Base.metadata.tables[t] for t in agent_tables()])
        busy = [t for t in backup.counts if t != "agent_settings" and uow.session.execute(
            select(func.count()).select_from(Base.metadata.tables[t])).scalar_one()]
        if busy:
            raise Conflict(f"Tables {', '.join(busy)} already hold rows; run the cleanup first or restore elsewhere.")
        settings, mode_in_backup = _settings_after_restore(backup, current, actor, path)
        # On PostgreSQL the backup's months get their partitions first (rows would otherwise land in DEFAULT).
        from core.partitions import ensure_partitions

        ensure_partitions(uow.session.connection(), utcnow(), since=backup.oldest_conversation)
        insert_backup_rows(uow.session.connection(), backup, path, settings, rebuild_indexes=rebuilds_indexes(backup))
        counts = dict(backup.counts)
        audit.append(uow.session, actor=actor, action="db.restore", target=str(path), after={
            "rows": counts, "file_sha256": backup.sha256, "origin": backup.origin, "here": here,
            "settings": {"in_backup": mode_in_backup, "restored": "off"}})
        uow.commit()
    return RestoreReport(counts, backup.sha256, mode_in_backup, settings["version"])


def _current_settings(uow: UnitOfWork) -> dict[str, Any] | None:
    if not inspect(uow.session.connection()).has_table("agent_settings"):
        return None
    row = uow.session.execute(select(Base.metadata.tables["agent_settings"]).where(
        Base.metadata.tables["agent_settings"].c.id == 1)).mappings().first()
    return dict(row) if row else None


def _settings_after_restore(backup: Backup, current: dict[str, Any] | None, actor: Actor,
                            path: Path) -> tuple[dict[str, Any], str | None]:
    """The one settings row to write: off, a version above both, disabled types from both, scope from the file."""
    stored = backup.settings
    now_disabled = set((current or {}).get("disabled_agent_types") or [])
    row = {
        "id": 1, "mode": "off", "version": max(stored.get("version") or 0, (current or {}).get("version") or 0) + 1,
        "allowed_shops": stored.get("allowed_shops") or [], "allowed_agent_types": stored.get("allowed_agent_types") or [],
        "shop_percent": stored.get("shop_percent"),
        "disabled_agent_types": sorted(now_disabled | set(stored.get("disabled_agent_types") or [])),
        "changed_by": actor.username[:100], "changed_at": utcnow(),
        "reason": f"restored from {path.name}; the agent system stays off until it is activated",
    }
    return row, stored.get("mode")
