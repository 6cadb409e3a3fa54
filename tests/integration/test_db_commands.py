"""The checklist's database steps through the real CLI: setup, verify, cleanup, restore."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from core.cli import main
from core.models import Client, Conversation, Shop
from tests.support.data import seed_minimal


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(m)).scalar_one() for m in (Shop, Client, Conversation))


def test_setup_twice_then_verify(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    assert main(["db", "setup", "--environment", "development"]) == 0
    assert main(["db", "setup"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["db", "verify"]) == 0
    out = capsys.readouterr().out
    assert "ok       agent_conversations" in out and "round trip" in out


def test_cleanup_keeps_host_tables_and_backup_restores(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine)
    shops, clients, convs = counts(engine)
    assert convs == 60
    assert main(["db", "cleanup"]) == 2  # without --yes nothing is dropped
    assert counts(engine)[2] == convs
    assert main(["db", "cleanup", "--yes"]) == 0
    out = capsys.readouterr().out
    backup = Path(next(line.split()[-1] for line in out.splitlines() if line.startswith("backup written to")))
    assert backup.stat().st_mode & 0o777 == 0o600  # client messages inside: it was world-readable (0644)
    assert main(["db", "verify"]) == 1
    assert "MISSING  agent_conversations" in capsys.readouterr().out
    # A second cleanup wrote an empty backup, the newest: restoring "the latest" would have restored nothing.
    assert main(["db", "cleanup", "--yes"]) == 1
    assert "The agent tables are already gone: nothing to back up or drop" in capsys.readouterr().err
    assert sorted(backup.parent.iterdir()) == [backup]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Shop)).scalar_one() == shops
        assert conn.execute(select(func.count()).select_from(Client)).scalar_one() == clients
    assert main(["db", "restore", str(backup)]) == 0
    assert counts(engine) == (shops, clients, convs)
    assert main(["db", "verify"]) == 0
    assert main(["audit", "verify"]) == 0


def test_a_backup_with_worker_rows_restores_on_both_databases(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    """Once a worker had run, restore failed on PostgreSQL: agent_workers' id is text, and moving its "sequence"
    past MAX(id) + 1 was a type error, so the agent tables stayed dropped."""
    from core.db import read_session
    from core.models import WorkerHeartbeat

    seed_minimal(engine)
    with engine.begin() as conn:
        conn.execute(WorkerHeartbeat.__table__.insert().values(id="host-1234-abcd", host="host", pid=1234))
    assert main(["db", "cleanup", "--yes"]) == 0
    out = capsys.readouterr().out
    backup = next(line.split()[-1] for line in out.splitlines() if line.startswith("backup written to"))
    assert main(["db", "restore", backup]) == 0, capsys.readouterr().err
    with read_session(engine) as s:
        assert s.scalars(select(WorkerHeartbeat.id)).all() == ["host-1234-abcd"]
    assert counts(engine)[2] == 60


def test_setup_after_cleanup_recreates_empty_agent_tables(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine)
    assert main(["db", "cleanup", "--yes"]) == 0
    assert main(["db", "setup"]) == 0
    assert "Recreated" in capsys.readouterr().out
    assert main(["db", "verify"]) == 0
    assert counts(engine)[2] == 0
    assert main(["status"]) == 0


def test_restored_ids_continue_after_restore(engine: Engine, backend: str, capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine)
    main(["db", "cleanup", "--yes"])
    backup = next(Path("backups").glob("*.jsonl.gz")) if Path("backups").exists() else None
    backup = backup or next(Path(p) for p in capsys.readouterr().out.split() if p.endswith(".jsonl.gz"))
    assert main(["db", "restore", str(backup)]) == 0
    seed_minimal(engine, conversations=5)
    assert counts(engine)[2] == 65


def test_production_cleanup_needs_confirmation(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine)
    before = counts(engine)
    monkeypatch.setenv("COOKIE_KEY", "prod-secret-value-for-tests")
    assert main(["--environment", "production", "db", "cleanup", "--yes"]) == 2
    assert "--confirm production" in capsys.readouterr().err
    assert counts(engine) == before  # nothing was dropped
    assert main(["--environment", "production", "db", "verify"]) == 0


def test_restore_refuses_a_file_that_is_not_a_backup(engine: Engine, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    bogus = tmp_path / "x.jsonl.gz"
    bogus.write_bytes(b"not gzip")
    assert main(["db", "restore", str(bogus)]) == 2
    assert "cannot be restored: it is not an intact gzip file" in capsys.readouterr().err
    assert main(["db", "restore", str(tmp_path / "missing.gz")]) == 2


def test_verify_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "core", "db", "verify"], capture_output=True, text=True,
                          env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: Cannot reach the database")
    assert "Traceback" not in proc.stderr


def test_sqlite_default_creates_var_directory(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "core", "db", "setup"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "var" / "agentops.db").exists()
    assert "migrated from empty" in proc.stdout


def test_unmigrated_database_gives_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()  # an empty file is a SQLite database without tables
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    proc = subprocess.run([sys.executable, "-m", "core", "status"], capture_output=True, text=True,
                          env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert "`python -m core db setup`" in proc.stderr and "`python -m core db restore PATH`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_nothing_touches_host_rows_on_cleanup(engine: Engine) -> None:
    seed_minimal(engine)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT COUNT(*) FROM appointments")).scalar_one()
    main(["db", "cleanup", "--yes"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM appointments")).scalar_one() == before


def test_a_full_disk_under_cleanup_drops_nothing_leaves_no_partial_file_and_is_audited(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    import errno
    import gzip

    from core.db import read_session
    from core.models import AuditRecord

    seed_minimal(engine)
    before = counts(engine)
    written = [0]
    real_write = gzip.GzipFile.write

    def write_until_full(self, data):  # noqa: ANN001, ANN202 - the device fills up after 4 KB of the backup
        written[0] += len(data)
        if written[0] > 4096:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(gzip.GzipFile, "write", write_until_full)
    assert main(["db", "cleanup", "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "No space left on device" in err
    assert "nothing was dropped" in err
    assert list((tmp_path / "backups").glob("*")) == []
    assert counts(engine) == before
    with read_session(engine) as s:
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "db.cleanup")).one()
    assert rec.outcome == "failed" and "No space left on device" in rec.reason


def test_restore_of_a_truncated_backup_is_one_sentence(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine)
    assert main(["db", "cleanup", "--yes"]) == 0
    backup = next(Path("backups").glob("*.jsonl.gz"))
    backup.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    capsys.readouterr()
    assert main(["db", "restore", str(backup)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "truncated" in err and err.count("\n") == 1


def test_readiness_after_a_cleanup_names_the_schema_failing_only(engine: Engine, tmp_path: Path) -> None:
    """With the agent tables dropped, /api/v2/agents/health listed "schema" as ok and as failing at once."""
    from core.auth import system_actor
    from core.queries.readiness import check_readiness
    from core.services.schema import cleanup_agent_tables
    from core.uow import UnitOfWork

    seed_minimal(engine)
    cleanup_agent_tables(actor=system_actor("test"), uow=UnitOfWork(engine), confirm="development",
                         backup_dir=tmp_path)
    ready = check_readiness(engine)
    assert "schema" in ready.failing and "schema" not in ready.ok, ready.as_dict()


def test_a_restore_streams_the_backup_instead_of_holding_it(engine: Engine, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash review: restore read the whole backup into memory first (1.47 GB for 200k conversations), so a
    large database's backup could not be restored on the machine that wrote it. Rows are now read twice, streamed:
    once to check the file whole, once to insert, a batch at a time."""
    import tracemalloc

    from core import backup_restore
    from core.auth import system_actor
    from core.backups import read_backup
    from core.services import schema
    from core.uow import UnitOfWork

    seed_minimal(engine, conversations=1000)
    path, _ = schema.cleanup_agent_tables(actor=system_actor("test"), uow=UnitOfWork(engine), confirm="development",
                                          backup_dir=tmp_path)
    monkeypatch.setattr(backup_restore, "BATCH", 100)
    tracemalloc.start()
    try:
        held = list(read_backup(path).rows())  # what holding every row costs
        whole = tracemalloc.get_traced_memory()[1]
        del held
        tracemalloc.reset_peak()
        report = schema.restore_agent_tables(actor=system_actor("test"), uow=UnitOfWork(engine), path=path)
        streamed = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.counts["agent_conversations"] == 1000 and counts(engine)[2] == 1000
    assert streamed < whole / 3, (streamed, whole)


def test_the_backup_is_on_disk_before_the_tables_are_dropped(engine: Engine, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing flushed the backup before the drop committed: after a power cut the drop could survive the backup."""
    import os

    from core import backups
    from core.auth import system_actor
    from core.services import schema
    from core.uow import UnitOfWork

    seed_minimal(engine, conversations=5)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(backups.os, "fsync", fsync)
    path, _ = schema.cleanup_agent_tables(actor=system_actor("test"), uow=UnitOfWork(engine), confirm="development",
                                          backup_dir=tmp_path)
    assert synced == [str(path) + ".partial", str(tmp_path)]


def _keys_and_indexes(engine: Engine) -> dict[str, set[str]]:
    from sqlalchemy import inspect

    found = inspect(engine)
    return {t: {i["name"] for i in found.get_indexes(t)} | {c["name"] for c in found.get_unique_constraints(t)}
            | {f["name"] for f in found.get_foreign_keys(t)} for t in ("agent_conversations", "agent_messages")}


def test_a_large_restore_builds_the_indexes_once_and_refuses_what_they_refuse(
        pg_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From REBUILD_INDEXES_FROM rows the restore sets the big tables' indexes, unique keys and foreign keys aside
    and builds them at the end: the same tables come back, and a row they refuse (a duplicate idempotency key)
    still refuses the whole restore, indexes included."""
    import gzip
    import hashlib
    import json

    from sqlalchemy import inspect

    from core import backup_restore
    from core.auth import system_actor
    from core.errors import UserInputError
    from core.models import agent_tables
    from core.services import schema
    from core.uow import UnitOfWork

    monkeypatch.setattr(backup_restore, "REBUILD_INDEXES_FROM", 0)
    seed_minimal(pg_engine, conversations=300)
    before = _keys_and_indexes(pg_engine)
    actor = system_actor("test")
    path, written = schema.cleanup_agent_tables(actor=actor, uow=UnitOfWork(pg_engine), backup_dir=tmp_path / "a")
    report = schema.restore_agent_tables(actor=actor, uow=UnitOfWork(pg_engine), path=path)
    assert report.counts == {t: n for t, n in written.items() if n} and counts(pg_engine)[2] == 300
    assert _keys_and_indexes(pg_engine) == before
    # The same backup with two messages sharing an idempotency key, sealed again with its checksum.
    items = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    keyed = [i["r"] for i in items if i.get("t") == "agent_messages" and i["r"].get("idempotency_key")]
    keyed[1]["idempotency_key"] = keyed[0]["idempotency_key"]
    keyed[1]["conversation_created_at"] = keyed[0]["conversation_created_at"]
    body = b"".join(json.dumps(i).encode() + b"\n" for i in items[:-1])
    trailer = {**items[-1], "sha256": hashlib.sha256(body).hexdigest()}
    bad = tmp_path / "b" / path.name
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(body + json.dumps(trailer).encode() + b"\n"))
    schema.cleanup_agent_tables(actor=actor, uow=UnitOfWork(pg_engine), backup_dir=tmp_path / "c")
    with pytest.raises(UserInputError, match="rows do not fit the tables"):
        schema.restore_agent_tables(actor=actor, uow=UnitOfWork(pg_engine), path=bad)
    assert not set(agent_tables()) & set(inspect(pg_engine).get_table_names())  # as before it: nothing half-built


def test_a_backup_of_another_database_is_restored_only_when_asked(engine: Engine, tmp_path: Path, sqlite_template: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """Staging's backup restored into production went through without a word: the file names where it came from."""
    import os
    import shutil

    from core.db import get_engine
    from tests.conftest import _use_database

    here = os.environ["DATABASE_URL"]
    seed_minimal(engine)
    shops, clients, _ = counts(engine)
    assert main(["db", "cleanup", "--yes"]) == 0
    other = tmp_path / "other.db"
    shutil.copy(sqlite_template, other)
    _use_database(monkeypatch, f"sqlite:///{other}")
    seed_minimal(get_engine())
    capsys.readouterr()
    assert main(["db", "cleanup", "--yes"]) == 0
    backup = next(line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.startswith("backup written"))
    engine = _use_database(monkeypatch, here)
    assert main(["db", "restore", backup]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {backup} was written from another database (sqlite {other}), not this one ("), err
    assert err.endswith("), so nothing was restored; if these tables belong here, restore with "
                        "--from-another-database.")
    assert main(["db", "verify"]) == 1  # the agent tables are still gone
    assert main(["db", "restore", backup, "--from-another-database"]) == 0
    assert counts(engine) == (shops, clients, 60)


def test_a_backup_taken_while_the_probe_folds_keeps_every_rollup_row(engine: Engine, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup read its tables one statement at a time; the probe, folding the current hour between the compact
    tables and agent_metrics, took the rows it moved out of the backup. Every table is now read from one
    snapshot."""
    import gzip
    import json

    from core import backups
    from core.auth import system_actor
    from core.db import write_bind
    from core.rollups_daily import fold_current_hour
    from core.services.conversations import enqueue_conversations
    from core.uow import UnitOfWork

    seed_minimal(engine, conversations=300, days=1)
    enqueue_conversations(actor=system_actor("test"), count=30, uow=UnitOfWork(engine))  # this hour's fine rows
    real_select = backups.select

    def select_during_a_fold(table):  # noqa: ANN001, ANN202
        if table.name == "agent_metrics":  # the probe's cycle lands between two tables of the dump
            with write_bind(engine).begin() as conn:
                assert fold_current_hour(conn) > 0
        return real_select(table)

    monkeypatch.setattr(backups, "select", select_during_a_fold)
    path, _ = backups.write_backup(engine, tmp_path)
    created = 0
    with gzip.open(path) as lines:
        for line in lines:
            item = json.loads(line)
            if item.get("t") in ("agent_metrics", "agent_metrics_hourly_by_type"):
                created += item["r"]["created"]
    with engine.connect() as conn:
        assert created == conn.execute(select(func.count()).select_from(Conversation)).scalar_one()
