"""Migrations: an empty database upgrades to head, and the models agree with the migrations."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from core.migrate import current_revision, head_revision, upgrade_to_head
from core.models import Base, agent_tables
from core.models.partitioning import include_object_for
from core.models.review import include_name


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


def test_migration_0014_keeps_alerts_and_their_history_and_stops_id_reuse(tmp_path) -> None:
    """On SQLite the alert tables are made again with AUTOINCREMENT; dropping them with foreign keys on could have
    cascaded into the history. (PostgreSQL's sequences never reuse an id: 0014 changes nothing there, and
    test_alerts checks the ids on both databases.)"""
    from alembic import command

    from core.db import make_engine
    from core.migrate import alembic_config

    eng = make_engine(f"sqlite:///{tmp_path / 'at-0013.db'}")
    cfg = alembic_config(eng)
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0013")
    rule = ("INSERT INTO agent_alert_rules (id, key, name, metric, op, threshold, window_minutes, severity, "
            "pending_seconds, keep_firing_seconds, no_data, rollback_trigger, labels, enabled, version, updated_by, "
            "updated_at) VALUES (:id, :key, 'r', 'error_rate', '>', 1, 5, 'critical', 0, 0, 'ok', 0, '{}', 1, 1, "
            "'t', '2026-12-07 10:00:00')")
    state = ("INSERT INTO agent_alert_states (id, rule_id, series, labels, state) "
             "VALUES (:id, :rule, :series, '{}', 'firing')")
    history = ("INSERT INTO agent_alert_history (alert_id, rule_id, at, from_state, to_state) "
               "VALUES (:alert, :rule, '2026-12-07 10:00:00', 'pending', 'firing')")
    with eng.begin() as conn:
        conn.execute(text(rule), [{"id": 1, "key": "kept"}, {"id": 2, "key": "removed"}])
        conn.execute(text(state), [{"id": 1, "rule": 1, "series": "a"}, {"id": 2, "rule": 1, "series": "b"},
                                   {"id": 3, "rule": 2, "series": "a"}])
        conn.execute(text(history), [{"alert": 1, "rule": 1}, {"alert": 2, "rule": 1}, {"alert": 3, "rule": 2}])
        conn.execute(text("DELETE FROM agent_alert_rules WHERE id = 2"))  # takes alert 3 and its history along
    upgrade_to_head(eng)
    with eng.begin() as conn:
        assert conn.execute(text("SELECT id FROM agent_alert_states ORDER BY id")).scalars().all() == [1, 2]
        assert conn.execute(text("SELECT alert_id FROM agent_alert_history ORDER BY alert_id")).scalars().all() == [1, 2]
        conn.execute(text("DELETE FROM agent_alert_states WHERE id = 2"))  # the newest alert goes
        assert conn.execute(text("SELECT alert_id FROM agent_alert_history")).scalars().all() == [1]  # still cascades
        conn.execute(text("INSERT INTO agent_alert_states (rule_id, series, labels, state) "
                          "VALUES (1, 'c', '{}', 'pending')"))
        # Not 2 again. (3 was removed before the migration, which cannot know of it.)
        assert conn.execute(text("SELECT max(id) FROM agent_alert_states")).scalar_one() == 3
    eng.dispose()
