"""Migrations: an empty database upgrades to head, and the models agree with the migrations."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from core.migrate import current_revision, head_revision, upgrade_to_head
from core.models.partitioning import include_object_for
from core.models.review import include_name
from core.models import Base, agent_tables


def test_head_is_reached_and_models_match(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name,
                                                     "include_object": include_object_for(conn.dialect.name)})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    before, after = upgrade_to_head(engine)
    assert before == after == head_revision()
    assert set(agent_tables()) <= set(inspect(engine).get_table_names())


def test_checklist_information_schema_query_finds_agent_tables(engine: Engine, backend: str) -> None:
    if backend == "sqlite":
        names = {r[0] for r in engine.connect().execute(text(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'agent%'"))}
    else:
        with engine.connect() as conn:
            names = {r[0] for r in conn.execute(text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_name LIKE 'agent%'"))}
    assert {"agent_conversations", "agent_messages", "agent_metrics", "agent_settings", "agent_audit_log",
            "agent_templates", "agent_instances", "agents"} <= names


def test_empty_sqlite_file_upgrades(tmp_path) -> None:
    from core.db import make_engine

    eng = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(eng) is None
    assert upgrade_to_head(eng) == (None, head_revision())
    eng.dispose()


def test_database_refuses_update_and_delete_on_audit_log(engine: Engine) -> None:
    from sqlalchemy.exc import DatabaseError

    from core import audit
    from core.auth import system_actor
    from core.uow import UnitOfWork

    with UnitOfWork(engine) as uow:
        audit.append(uow.session, actor=system_actor("test"), action="probe")
        uow.commit()
    for sql in ("UPDATE agent_audit_log SET reason = 'edited'", "DELETE FROM agent_audit_log"):
        with pytest.raises(DatabaseError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(sql))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT reason FROM agent_audit_log")).scalar_one() == ""
