"""Month arithmetic of the partitions, their names, and the DDL each database gets from the one set of models."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from core.models import Base
from core.models.partitioning import applies_to, include_object_for, is_partition
from core.partitions import add_months, month_of_suffix, month_start, suffix
from core.retention import cutoff

UTC = timezone.utc


def test_months_cross_years_both_ways() -> None:
    assert add_months(datetime(2026, 11, 1, tzinfo=UTC), 2) == datetime(2027, 1, 1, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 1, tzinfo=UTC), -1) == datetime(2025, 12, 1, tzinfo=UTC)
    assert month_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_retention_keeps_the_current_month_and_n_before_it() -> None:
    now = datetime(2026, 1, 15, 8, tzinfo=UTC)
    assert cutoff(now, 1) == datetime(2025, 12, 1, tzinfo=UTC)
    assert cutoff(now, 13) == datetime(2024, 12, 1, tzinfo=UTC)


def test_partition_names_round_trip() -> None:
    month = datetime(2027, 3, 1, tzinfo=UTC)
    assert suffix(month) == "y2027m03"
    assert month_of_suffix(f"agent_conversations_{suffix(month)}") == month
    assert month_of_suffix("agent_messages_default") is None and is_partition("agent_messages_default")
    assert not is_partition("agent_conversations") and not is_partition("agent_conversations_fts")


def _ddl(table: str, dialect) -> str:  # noqa: ANN001 - a dialect
    return str(CreateTable(Base.metadata.tables[table]).compile(dialect=dialect))


def test_postgresql_gets_partitioned_tables_and_sqlite_the_tables_it_had() -> None:
    pg, lite = _ddl("agent_messages", postgresql.dialect()), _ddl("agent_messages", sqlite.dialect())
    assert "PARTITION BY RANGE (conversation_created_at)" in pg
    assert "PRIMARY KEY (id, conversation_created_at)" in pg and "UNIQUE (idempotency_key, conversation_created_at)" in pg
    assert "REFERENCES agent_conversations (id, created_at)" in pg
    assert "PARTITION" not in lite and "PRIMARY KEY (id)" in lite and "UNIQUE (idempotency_key)" in lite
    assert "REFERENCES agent_conversations (id)" in lite
    assert "REFERENCES agent_conversations" not in _ddl("agent_review_states", postgresql.dialect())
    assert "REFERENCES agent_conversations (id)" in _ddl("agent_review_states", sqlite.dialect())


def test_alembic_compares_only_the_current_databases_constraints() -> None:
    messages = Base.metadata.tables["agent_messages"]
    pg_only = next(c for c in messages.constraints if c.name == "uq_agent_messages_idempotency_key_month")
    assert applies_to(pg_only, "postgresql") and not applies_to(pg_only, "sqlite")
    assert include_object_for("postgresql")(pg_only, pg_only.name, "unique_constraint", False, None)
    assert not include_object_for("sqlite")(pg_only, pg_only.name, "unique_constraint", False, None)
