"""A streaming replica of a private test cluster, made by the project's own `scripts/make-replica`."""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from tests.support.net import free_port
from tests.support.pg_cluster import PgCluster, bindir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make-replica"


class PgReplica:
    """The replica of PRIMARY in the primary's temporary directory: `create()`, `stop()`, `start()`, `url()`."""

    def __init__(self, primary: PgCluster, *, database: str = "agentops") -> None:
        self.primary, self.database = primary, database
        self.port = free_port()
        self.data_dir = primary.root / "replica"  # removed with the primary's files

    def script(self, *args: str) -> subprocess.CompletedProcess:
        """Run scripts/make-replica against the private primary."""
        cmd = [str(SCRIPT), "--primary-port", str(self.primary.port), "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--database", self.database, *args]
        env = {**os.environ, "PG_BINDIR": str(bindir())}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)

    def create(self) -> PgReplica:
        """Make and start the replica; fail loudly with the script's own words."""
        done = self.script()
        assert done.returncode == 0, done.stderr + done.stdout
        return self

    def start(self) -> None:
        """Start the stopped replica again (the script is idempotent)."""
        done = self.script()
        assert done.returncode == 0, done.stderr + done.stdout

    def stop(self) -> None:
        """Stop the replica (fast shutdown): its port refuses connections."""
        done = self.script("--stop")
        assert done.returncode == 0, done.stderr + done.stdout

    def url(self, database: str | None = None) -> str:
        """A SQLAlchemy URL for DATABASE on the replica."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database or self.database}"

    def execute(self, sql: str) -> object:
        """Run one statement on the replica and return its scalar result (pause/resume replay, lsn)."""
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql)).scalar()
        finally:
            engine.dispose()

    def pause(self, *, timeout: float = 20.0) -> None:
        """Pause replay and wait until it has paused (a pause is only requested at first)."""
        self.execute("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + timeout
        while self.execute("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "replay did not pause"
            time.sleep(0.05)  # polling the replay state

    def resume(self) -> None:
        """Resume replay (harmless when it runs)."""
        self.execute("SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, *, timeout: float = 20.0) -> None:
        """Until the replica has replayed everything the primary had written when this was called."""
        primary = create_engine(self.primary.url(self.database))
        with primary.connect() as conn:
            # The insert position: with synchronous_commit off a commit may not have been written out yet.
            target = conn.execute(text("SELECT CAST(pg_current_wal_insert_lsn() AS text)")).scalar_one()
        primary.dispose()
        deadline = time.monotonic() + timeout
        sql = f"SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '{target}') >= 0"
        while not self.execute(sql):
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)  # polling replay progress, not waiting for time to pass


@contextmanager
def primary_with_replica(database: str = "agentops") -> Iterator[tuple[PgCluster, PgReplica]]:
    """A private primary with DATABASE migrated to head and its streaming replica; both gone afterwards."""
    from core.db import dispose_engines, get_engine
    from core.migrate import upgrade_to_head

    with PgCluster(settings={"autovacuum": "off"}) as primary:  # a quiet primary: no WAL but the tests' own
        upgrade_to_head(get_engine(primary.create_database(database)))
        dispose_engines()
        replica = PgReplica(primary, database=database).create()
        try:
            yield primary, replica
        finally:
            replica.stop()


def use_primary_and_replica(primary: PgCluster, replica: PgReplica, monkeypatch: Any) -> Engine:
    """Point this process at the primary (DATABASE_URL) and the running, replaying replica (DATABASE_READ_URL)."""
    from core.config import reset_settings
    from core.db import dispose_engines, get_engine
    from core.read_routing import forget_replica_state

    replica.start()  # a test before may have stopped it (the script leaves a running replica alone)
    replica.resume()
    monkeypatch.setenv("DATABASE_URL", primary.url(replica.database))
    monkeypatch.setenv("DATABASE_READ_URL", replica.url())
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    reset_settings()
    dispose_engines()
    forget_replica_state()
    return get_engine()
