"""Migration 0011 on a populated database: down to 0010 and up again keeps every row and figure, and the schema
ends as the models define it (PostgreSQL: partitioned; SQLite: one more column)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

from core.db import dispose_engines, make_engine
from core.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from core.models import Base
from core.models.partitioning import include_object_for
from core.models.review import include_name
from tests.conftest import PG_ADMIN_URL, _use_database
from tests.support.data import seed_minimal

FIGURES = {
    "conversations": "SELECT count(*), sum(id), sum(cost_usd), sum(prompt_tokens), min(created_at), max(created_at),"
                     " sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) FROM agent_conversations",
    "messages": "SELECT count(*), sum(id), sum(length(content)), sum(conversation_id) FROM agent_messages",
    "metrics": "SELECT count(*), sum(created), sum(completed), sum(cost_usd) FROM agent_metrics",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def populated(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A database at head with three months of conversations (PostgreSQL: a database of its own, dropped after)."""
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    admin, name = None, f"agentops_test_part_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'populated.db'}"
    else:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade_to_head(make_engine(url))
    engine = _use_database(monkeypatch, url)
    seed_minimal(engine, conversations=600, days=80)
    yield engine
    dispose_engines()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _figures(engine: Engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        return {k: tuple(str(v) for v in conn.execute(text(sql)).one()) for k, sql in FIGURES.items()}


def _migrate(engine: Engine, verb: str, revision: str) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, revision)


def _diffs(engine: Engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name,
                                                     "include_object": include_object_for(conn.dialect.name)})
        return compare_metadata(ctx, Base.metadata)


def test_down_and_up_again_keeps_every_row_and_figure(populated: Engine) -> None:
    engine = populated
    at_head = _figures(engine)
    assert int(at_head["conversations"][0]) == 600 and int(at_head["messages"][0]) > 0

    # 0012 keeps closed hours' sums outside agent_metrics: undone first, it puts them back per instance.
    _migrate(engine, "downgrade", "0011")
    at_0011 = _figures(engine)
    assert (at_0011["conversations"], at_0011["messages"]) == (at_head["conversations"], at_head["messages"])
    assert int(at_0011["metrics"][1]) == 600

    _migrate(engine, "downgrade", "0010")
    assert current_revision(engine) == "0010"
    assert _figures(engine) == at_0011
    with engine.connect() as conn:
        columns = [r[0] for r in conn.exec_driver_sql("SELECT * FROM agent_messages LIMIT 0").cursor.description] \
            if engine.dialect.name == "sqlite" else \
            list(conn.execute(text("SELECT column_name FROM information_schema.columns "
                                   "WHERE table_name = 'agent_messages'")).scalars())
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'agent_conversations'")).scalar() \
            if engine.dialect.name == "postgresql" else "r"
    assert "conversation_created_at" not in columns and kind == "r"

    _migrate(engine, "upgrade", "head")
    assert current_revision(engine) == head_revision()
    assert _figures(engine) == at_head
    assert _diffs(engine) == []
    with engine.begin() as conn:
        mismatched = conn.execute(text(
            "SELECT count(*) FROM agent_messages m JOIN agent_conversations c ON c.id = m.conversation_id "
            "WHERE m.conversation_created_at <> c.created_at")).scalar()
        if engine.dialect.name == "postgresql":
            kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'agent_conversations'")).scalar()
            in_default = conn.execute(text("SELECT count(*) FROM agent_conversations_default")).scalar()
            months = conn.execute(text("SELECT count(DISTINCT tableoid) FROM agent_conversations")).scalar()
            assert (kind, in_default) == ("p", 0) and months >= 3  # every row in its month's partition
            # The id sequences came along: the next conversation gets the next id, not 1.
            next_id = conn.execute(text("SELECT nextval('agent_conversations_id_seq')")).scalar()
            assert next_id > int(at_head["conversations"][0])
    assert mismatched == 0
    # Building the keys did not mark the models' constraints "never inline": a later create_all (a restore) in
    # this process still makes SQLite tables with their primary key and foreign key (it once left them out).
    ddl = str(CreateTable(Base.metadata.tables["agent_messages"]).compile(dialect=sqlite.dialect()))
    assert "PRIMARY KEY (id)" in ddl and "FOREIGN KEY(conversation_id) REFERENCES agent_conversations (id)" in ddl
    ddl = str(CreateTable(Base.metadata.tables["agent_conversations"]).compile(dialect=sqlite.dialect()))
    assert "PRIMARY KEY (id)" in ddl and "REFERENCES agent_instances" in ddl
