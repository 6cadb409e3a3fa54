"""Fixtures: each database test runs on SQLite and on a real PostgreSQL database made for this run."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from core.config import reset_settings
from core.db import dispose_engines, get_engine, make_engine
from core.migrate import upgrade_to_head
from core.models import AuditHead, Base

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]
TEST_AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789abcdef"


def _pg_reachable() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with eng.connect():
            pass
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot use PostgreSQL"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test run (per xdist worker), migrated to head, dropped after."""
    problem = _pg_reachable()
    if problem:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must run the PostgreSQL tests; .ci/run starts the server)", pytrace=False)
        pytest.skip(message)
    name = f"agentops_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    yield url
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()
    return path


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> Engine:
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    dispose_engines()
    return get_engine()


def _truncate_postgres(engine: Engine) -> None:
    Base.metadata.create_all(engine)  # a cleanup test may have dropped agent tables
    # Only the tables that hold rows: TRUNCATE makes new files for a table and each of its indexes, and doing it
    # for all 52 cost 0.2-0.8 s before every PostgreSQL test. Every sequence starts again, as RESTART IDENTITY did.
    probe = " UNION ALL ".join(f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")"
                               for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        full = ", ".join(f'"{name}"' for (name,) in conn.execute(text(probe)))
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # the audit tables refuse TRUNCATE
        if full:
            conn.execute(text(f"TRUNCATE {full} CASCADE"))
        conn.execute(text("SELECT setval(c.oid, 1, false) FROM pg_class c "
                          "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"))
        conn.execute(text("INSERT INTO agent_audit_head (id, seq, last_hash) VALUES (1, 0, :h)"), {"h": "0" * 64})
        conn.execute(text(
            "INSERT INTO agent_settings (id, version, mode, allowed_shops, allowed_agent_types, disabled_agent_types,"
            " changed_by, changed_at, reason) VALUES (1, 1, 'off', '[]', '[]', '[]', 'system', now(), 'initial state')"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a clean, migrated database of the test's backend."""
    if backend == "sqlite":
        path = tmp_path / "agentops.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def engine(db_url: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The shared engine pointed at a clean database; DATABASE_URL is set for code under test."""
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    eng = _use_database(monkeypatch, db_url)
    if backend == "postgresql":
        _truncate_postgres(eng)
    yield eng
    dispose_engines()
    reset_settings()


@pytest.fixture
def pg_engine(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """For the few scenarios only PostgreSQL has (server-side connection kills, SKIP LOCKED between workers)."""
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    eng = _use_database(monkeypatch, pg_database)
    _truncate_postgres(eng)
    yield eng
    dispose_engines()
    reset_settings()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's .env or writes into the project's var/."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SENTRY_DSN", "AGENT_SYSTEM_ENABLED", "ENVIRONMENT",
                "AUDIT_PREVIOUS_KEYS", "AGENTOPS_TOKEN", "METRICS_TOKEN", "API_DOCS"):
        # setenv first, so the undo removes the variable even when it was unset: `main(["--environment", …])`
        # writes ENVIRONMENT into os.environ, and a bare delenv of an unset variable records nothing to undo,
        # which leaked "staging" into the module-scoped fixtures of later tests.
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    # A deployment's audit key, as staging and production must have; tests of the development key unset it.
    monkeypatch.setenv("AUDIT_KEY", TEST_AUDIT_KEY)
    reset_settings()
    yield
    reset_settings()


def audit_head_seq(engine: Engine) -> int:
    """How many audit records were written (for assertions)."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT seq FROM agent_audit_head WHERE id = 1")).scalar_one()


__all__ = ["audit_head_seq", "AuditHead"]


@pytest.fixture
def fake_openai() -> Iterator["FakeOpenAI"]:
    """An OpenAI-compatible server on loopback; the real openai client talks to it."""
    from tests.support.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()
