"""scripts/make-replica against a primary laid out like Debian's (configuration outside the data directory) with no
replication line in pg_hba.conf: the script adds the line once, copies the configuration the base backup lacks,
and a second run leaves the running replica alone."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.pg_cluster import PgCluster
from tests.support.pg_replica import PgReplica

LINE = "host replication all 127.0.0.1/32 trust"


def _debian_layout(cluster: PgCluster) -> Path:
    """Move the configuration to ROOT/etc, drop every replication line, point the server at it."""
    etc = cluster.root / "etc"
    etc.mkdir()
    for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
        shutil.move(cluster.data_dir / name, etc / name)
    hba = etc / "pg_hba.conf"
    hba.write_text("".join(line for line in hba.read_text().splitlines(keepends=True) if "replication" not in line))
    with open(etc / "postgresql.conf", "a") as conf:
        conf.write(f"hba_file = '{hba}'\nident_file = '{etc / 'pg_ident.conf'}'\n")
    if cluster._as_postgres:  # the server reads its configuration as the postgres user
        for path in (etc, *etc.iterdir()):
            shutil.chown(path, user="postgres", group="postgres")
    return etc


@pytest.fixture
def debian_like() -> Iterator[tuple[PgCluster, Path]]:
    cluster = PgCluster().init()
    try:
        etc = _debian_layout(cluster)
        cluster.run("pg_ctl", "-D", str(cluster.data_dir), "-l", str(cluster.log_file), "-w", "-t", "30",
                    "-o", f"-c config_file={etc / 'postgresql.conf'}", "start")
        cluster.create_database("agentops")
        yield cluster, etc
    finally:
        cluster.destroy()


def _replication_lines(etc: Path) -> int:
    return sum(line.strip() == LINE for line in (etc / "pg_hba.conf").read_text().splitlines())


def test_the_script_allows_replication_once_and_is_idempotent(debian_like) -> None:
    cluster, etc = debian_like
    replica = PgReplica(cluster)
    first = replica.script()
    try:
        assert first.returncode == 0, first.stderr + first.stdout
        assert f"Added to {etc / 'pg_hba.conf'}" in first.stdout and _replication_lines(etc) == 1
        assert (replica.data_dir / "pg_hba.conf").exists()  # copied: the base backup does not hold it
        assert replica.execute("SELECT pg_is_in_recovery()") is True
        assert f"DATABASE_READ_URL=postgresql://postgres@127.0.0.1:{replica.port}/agentops" in first.stdout
        primary = create_engine(cluster.url("agentops"))
        with primary.begin() as conn:
            conn.execute(text("CREATE TABLE replicated (n int)"))
            conn.execute(text("INSERT INTO replicated VALUES (42)"))
        primary.dispose()
        replica.wait_caught_up()
        assert replica.execute("SELECT n FROM replicated") == 42
        again = replica.script()
        assert again.returncode == 0 and "already runs" in again.stdout and _replication_lines(etc) == 1
        replica.stop()
        restarted = replica.script()
        assert restarted.returncode == 0 and "Started the replica" in restarted.stdout
    finally:
        replica.stop()


def test_the_script_refuses_a_directory_that_is_not_a_replica(debian_like, tmp_path: Path) -> None:
    cluster, _etc = debian_like
    replica = PgReplica(cluster)
    replica.data_dir = tmp_path / "occupied"
    replica.data_dir.mkdir()
    (replica.data_dir / "notes.txt").write_text("someone else's files")
    done = replica.script()
    assert done.returncode == 2 and "exists and is not a replica" in done.stderr
    assert (replica.data_dir / "notes.txt").read_text() == "someone else's files"
