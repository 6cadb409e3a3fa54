"""Engines and sessions. Nothing here connects until a caller asks for a connection."""
from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.errors import UserInputError

_engines: dict[tuple[str, bool], Engine] = {}
_relaxed: dict[tuple[str, str], Engine] = {}
_lock = threading.Lock()
# Only `db setup` makes a new SQLite file; every other surface refuses a path that holds none.
_may_create = False


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for writers.

    pysqlite begins transactions lazily; a reader that later writes can then fail with
    SQLITE_BUSY. Writers announce themselves with the execution option `sqlite_write`
    and take the write lock at BEGIN, so they queue behind each other instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("sqlite_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def normalize_url(url: str) -> str:
    """Use psycopg2 for plain postgresql:// URLs (SQLAlchemy 2.1 would pick psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, connect_timeout: int = 5, application_name: str = "agentops",
                create: bool = True) -> Engine:
    """A new engine for URL with this project's connection settings; with CREATE false, a SQLite file (and its
    folder) that does not exist yet is refused instead of made."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        extra: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if create:
                _make_folder(path)
            elif not parsed.query:  # open, never make: a typo must not leave an empty database (and folders) behind
                # (A URL with options of its own, such as uri=true or timeout, is opened as it says.)
                extra["creator"] = functools.partial(_open_existing_sqlite, path)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True,
                               **extra)
        _sqlite_setup(engine)
        return engine
    # hide_parameters: an unexpected database error (its traceback, a log line, Sentry) must not carry the values
    # of the statement, such as a new user's password hash.
    return create_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=1800, hide_parameters=True,
        connect_args={"connect_timeout": connect_timeout, "application_name": application_name},
    )


def _open_existing_sqlite(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite file at PATH, which must exist (an OperationalError says it does not)."""
    return sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=rw", uri=True, check_same_thread=False,
                           timeout=30)


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, a read-only place
        raise UserInputError(f"DATABASE_URL: the folder of the SQLite file cannot be made ({path.parent}: "
                             f"{exc.strerror or type(exc).__name__}).") from None


def may_create_database() -> None:
    """Let this process's shared engine create a SQLite file that is missing (`db setup` only)."""
    global _may_create
    _may_create = True


def get_engine(url: str | None = None, *, read: bool = False) -> Engine:
    """The shared engine for URL (default: DATABASE_URL, or DATABASE_READ_URL for heavy reads).

    `read=True` gives the replica's engine without any fallback; reads that tolerate lag use
    `core.read_routing.replica_session()`, which falls back to the primary while the replica is unreachable."""
    settings = get_settings()
    replica = read and url is None and settings.database_read_url is not None
    if url is None:
        url = (settings.database_read_url if read else None) or settings.database_url
    key = (url, read)
    with _lock:
        if key not in _engines:
            _engines[key] = (make_engine(url, connect_timeout=settings.database_read_connect_timeout_seconds,
                                         application_name="agentops-read", create=False) if replica
                             else make_engine(url, create=_may_create))
        return _engines[key]


def dispose_engines() -> None:
    """Close every pooled connection (tests, forked workers)."""
    with _lock:
        for engine in [*_engines.values(), *_relaxed.values()]:
            engine.dispose()
        _engines.clear()
        _relaxed.clear()


def write_bind(engine: Engine) -> Engine:
    """The engine variant whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(sqlite_write=True) if engine.dialect.name == "sqlite" else engine


def relaxed_bind(engine: Engine) -> Engine:
    """For writes that may be lost in a crash without harm (claims, heartbeats): on PostgreSQL a pool whose
    connections do not wait for the WAL flush at commit, and are not pinged at each checkout (a dead one fails
    its claim or heartbeat, which is simply made again); elsewhere the ordinary write engine."""
    if engine.dialect.name != "postgresql":
        return write_bind(engine)
    return _variant(engine, "relaxed", pool_size=5, max_overflow=10, options="-c synchronous_commit=off")


def hot_bind(engine: Engine) -> Engine:
    """The worker's completions on PostgreSQL: durable commits, but no ping round trip at each checkout.

    A connection that died since its last use fails its statement; SQLAlchemy then drops the pool's stale
    connections and the worker's database retry (within the lease) runs it again on a fresh one.
    """
    if engine.dialect.name != "postgresql":
        return write_bind(engine)
    return _variant(engine, "hot", pool_size=10, max_overflow=30, options=None)


def _variant(engine: Engine, kind: str, *, pool_size: int, max_overflow: int, options: str | None) -> Engine:
    key = (engine.url.render_as_string(hide_password=False), kind)
    with _lock:
        if key not in _relaxed:
            args = {"connect_timeout": 5, "application_name": f"agentops-{kind}"}
            _relaxed[key] = create_engine(engine.url, pool_size=pool_size, max_overflow=max_overflow,
                                          pool_pre_ping=False, pool_recycle=1800, hide_parameters=True,
                                          connect_args={**args, **({"options": options} if options else {})})
        return _relaxed[key]


def read_session(engine: Engine | None = None) -> Session:
    """A session for reads only; the caller closes it (use as a context manager)."""
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)()


@contextmanager
def snapshot_session(session: Session) -> Iterator[Session]:
    """A session whose reads all see one snapshot of SESSION's database: on PostgreSQL a session of its own in a
    REPEATABLE READ transaction (under READ COMMITTED each statement sees what committed before it, so
    a fold moving rollup rows between two statements of one figure counted them twice or not at all); on SQLite
    SESSION itself (a read transaction is one snapshot there)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql" or _in_snapshot(session):
        yield session
        return
    engine = bind.engine if isinstance(bind, Connection) else bind
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")  # not read-only: a standby refuses its reset
        with Session(bind=conn, expire_on_commit=False, info=dict(session.info)) as snapshot:
            yield snapshot


def _in_snapshot(session: Session) -> bool:
    """SESSION already reads one snapshot: its connection was opened REPEATABLE READ or SERIALIZABLE (a caller that
    wants several figures to agree, or a benchmark counting rows from its own transaction's statistics)."""
    level = session.connection().get_execution_options().get("isolation_level", "")
    return level in ("REPEATABLE READ", "SERIALIZABLE")


def is_postgres(engine: Engine) -> bool:
    """True when ENGINE talks to PostgreSQL (SKIP LOCKED, triggers, COPY)."""
    return engine.dialect.name == "postgresql"


def reset_id_sequence(conn: Connection, table: str) -> None:
    """After rows were written with explicit ids, move TABLE's PostgreSQL serial past the largest (no-op on SQLite)."""
    if conn.dialect.name != "postgresql":
        return
    # Only an id with a sequence: agent_workers' id is text, and MAX(id) + 1 failed the whole restore on it.
    if conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": f'"{table}"'}).scalar() is None:
        return
    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                      f"COALESCE((SELECT MAX(id) FROM \"{table}\"), 0) + 1, false)"))
