"""Monthly partitions on PostgreSQL: the DDL the models need that one metadata cannot say for both databases.

`agent_conversations` is partitioned by RANGE (created_at) and `agent_messages` by RANGE (conversation_created_at),
so a month of history is one pair of tables that retention drops whole (core.retention). PostgreSQL wants the
partition key inside every primary key and unique constraint, so on PostgreSQL the primary keys of both tables
carry it (compiled here: the metadata keeps the single `id` that SQLite's INTEGER PRIMARY KEY autoincrement needs,
and Alembic does not compare primary keys). Constraints that differ by database are declared twice, each with
`ddl_if(dialect=...)`; `include_object_for` tells Alembic's comparison to look only at the current database's.
SQLite keeps the tables as they were.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import DDL, PrimaryKeyConstraint, Table, event
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler

# Table name → its partition key column (PostgreSQL).
PARTITION_KEYS = {"agent_conversations": "created_at", "agent_messages": "conversation_created_at"}
# The tables partitions are named after: agent_conversations_y2026m12, agent_conversations_default.
PARTITION_NAME = re.compile(r"^(agent_conversations|agent_messages)_(y\d{4}m\d{2}|default)$")
# What migration 0005 gave the conversations table; a partitioned parent takes no storage options, its months do.
CONVERSATION_STORAGE = ("fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, "
                        "autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01")


def partition_by(table: str) -> dict[str, str]:
    """The table keyword that makes TABLE partitioned by month of its key on PostgreSQL."""
    return {"postgresql_partition_by": f"RANGE ({PARTITION_KEYS[table]})"}


@compiles(PrimaryKeyConstraint, "postgresql")
def _primary_key_with_partition_key(constraint: PrimaryKeyConstraint, compiler: DDLCompiler, **kw: Any) -> str:
    # A partitioned table's primary key must include its partition key; ids stay unique through their sequence.
    text = compiler.visit_primary_key_constraint(constraint, **kw)
    table = constraint.table
    key = PARTITION_KEYS.get(table.name)
    # Only a table partitioned by KEY (migrations before 0011 create these tables plain, without the column).
    partitioned = key is not None and key in table.c and bool(table.dialect_options["postgresql"]["partition_by"])
    if partitioned and text and key not in [c.name for c in constraint.columns]:
        text = text.replace(")", f", {compiler.preparer.quote(key)})", 1)
    return text


def add_default_partition(table: Table) -> None:
    """Give TABLE a DEFAULT partition when it is created on PostgreSQL, so no insert ever finds no partition."""
    event.listen(table, "after_create", DDL(
        f"CREATE TABLE IF NOT EXISTS {table.name}_default PARTITION OF {table.name} DEFAULT").execute_if(
        dialect="postgresql"))


def applies_to(obj: Any, dialect: str) -> bool:
    """False for a constraint or index declared only for another database (`ddl_if(dialect=...)`)."""
    cond = getattr(obj, "_ddl_if", None)
    wanted = getattr(cond, "dialect", None) if cond is not None else None
    if wanted is None:
        return True
    return dialect == wanted if isinstance(wanted, str) else dialect in wanted


def include_object_for(dialect: str):  # noqa: ANN201 - Alembic's include_object callable
    """Alembic's include_object for DIALECT: model constraints of the other database are not expected here."""

    def include_object(obj: Any, _name: str | None, type_: str, reflected: bool, _compare_to: Any) -> bool:
        if reflected:  # PostgreSQL lists a foreign key to a partitioned table once more for each of its partitions
            return not (type_ == "foreign_key_constraint" and is_partition(obj.referred_table.name))
        return applies_to(obj, dialect)

    return include_object


def is_partition(name: str | None) -> bool:
    """True for a month (or the default) partition: PostgreSQL lists them as tables, no model describes them."""
    return bool(name) and PARTITION_NAME.match(name) is not None
