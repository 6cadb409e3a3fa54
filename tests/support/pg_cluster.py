"""A private PostgreSQL cluster for one test: initdb into a temporary directory, served on a free loopback port.

Tests stop and start it (a database restart under a running worker) or, with `run("pg_basebackup", …)`, make a
streaming replica of it. As root, every PostgreSQL binary runs as the `postgres` OS user, which owns the data.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.net import free_port

# Fast and small: these clusters hold test data only, so durability is traded for speed.
DEFAULT_SETTINGS = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
                    "shared_buffers": "32MB", "max_connections": "80", "unix_socket_directories": "''",
                    "listen_addresses": "'127.0.0.1'", "log_min_messages": "warning"}


def bindir() -> Path:
    """Where initdb and pg_ctl live: PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path is None:
        raise RuntimeError("initdb not found: install PostgreSQL or set PG_BINDIR")
    return Path(on_path).parent


class PgCluster:
    """One cluster: `start()`, `stop()`, `restart(down_seconds=…)`, `url(database)`, `destroy()` (or use `with`)."""

    def __init__(self, *, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.settings = {**DEFAULT_SETTINGS, "port": str(self.port), **(settings or {})}
        self.root = Path(tempfile.mkdtemp(prefix="agentops-pg-"))
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:  # the server refuses to run as root; the postgres user must own its files
            shutil.chown(self.root, user="postgres", group="postgres")

    def __enter__(self) -> "PgCluster":
        return self.init().start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for DATABASE on this cluster (user postgres, trust auth)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a PostgreSQL binary (initdb, pg_ctl, pg_basebackup, psql …) as the user that owns the data."""
        cmd = [str(bindir() / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)

    def init(self) -> "PgCluster":
        """initdb with trust auth for user postgres, then this cluster's settings."""
        self.run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
                 "--no-instructions")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in self.settings.items())
        return self

    def start(self) -> "PgCluster":
        """Start the server and wait until it accepts connections."""
        self.run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30", "start")
        return self

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server: fast (end sessions, clean shutdown) or immediate (as if it crashed)."""
        self.run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, *, down_seconds: float, mode: str = "fast") -> None:
        """Stop, stay down for DOWN_SECONDS (clients see refused connections), start again."""
        self.stop(mode=mode)
        time.sleep(down_seconds)  # the outage itself, not a wait for a condition
        self.start()

    def create_database(self, name: str) -> str:
        """Create database NAME and return its URL."""
        self.run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-q",
                 "-c", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server if it runs and remove every file of the cluster."""
        if (self.data_dir / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
