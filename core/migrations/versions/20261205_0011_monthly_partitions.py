"""monthly partitions: agent_conversations and agent_messages partitioned by month (PostgreSQL)

PostgreSQL: agent_conversations becomes PARTITION BY RANGE (created_at) and agent_messages PARTITION BY RANGE
(conversation_created_at), a new column copied from the message's conversation, so a month of both drops as two
tables (`python -m core retention`). A populated database is converted in one transaction: the old tables lose
their indexes and keys (their names are taken again), are renamed aside, the partitioned tables are made LIKE
them (same columns, defaults and id sequences), partitions are created for every month the data spans, the rows
are copied with INSERT … SELECT, the old tables dropped, and keys and indexes built once from the models.
Primary keys become (id, created_at) / (id, conversation_created_at); the idempotency key is unique per
conversation month (it names the conversation, so it refuses what it refused before); the review tables' foreign
keys to agent_conversations(id) are dropped, as a partitioned table has no key on id alone (retention deletes
those rows with their month). SQLite: agent_messages gains conversation_created_at, nothing else changes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 08:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection, inspect, text
from sqlalchemy.schema import AddConstraint, CreateIndex

import core.models.base

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("agent_conversations", "agent_messages")
REVIEW_TABLES = ("agent_review_states", "agent_review_records", "agent_review_queue_items", "agent_judge_scores",
                 "agent_pii_reveals")
COPY_MESSAGES = ("INSERT INTO agent_messages SELECT m.*, c.created_at FROM {old_m} m "
                 "JOIN {old_c} c ON c.id = m.conversation_id")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.add_column("agent_messages", sa.Column(
            "conversation_created_at", core.models.base.UTCDateTime(timezone=True), nullable=False,
            server_default="1970-01-01 00:00:00.000000"))
        bind.execute(text("UPDATE agent_messages SET conversation_created_at = (SELECT c.created_at "
                          "FROM agent_conversations c WHERE c.id = agent_messages.conversation_id)"))
        return
    from core.models import utcnow
    from core.partitions import ensure_partitions

    _drop_references(bind)
    for table in TABLES:
        _strip(bind, table)
        bind.execute(text(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned"))
    bind.execute(text("CREATE TABLE agent_conversations (LIKE agent_conversations_unpartitioned INCLUDING DEFAULTS)"
                      " PARTITION BY RANGE (created_at)"))
    bind.execute(text("CREATE TABLE agent_messages (LIKE agent_messages_unpartitioned INCLUDING DEFAULTS,"
                      " conversation_created_at timestamptz NOT NULL) PARTITION BY RANGE (conversation_created_at)"))
    oldest = bind.execute(text("SELECT min(created_at) FROM agent_conversations_unpartitioned")).scalar()
    ensure_partitions(bind, utcnow(), since=oldest)
    bind.execute(text("INSERT INTO agent_conversations SELECT * FROM agent_conversations_unpartitioned"))
    bind.execute(text(COPY_MESSAGES.format(old_m="agent_messages_unpartitioned",
                                           old_c="agent_conversations_unpartitioned")))
    _move_sequences(bind, suffix="unpartitioned")
    _build(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.drop_column("agent_messages", "conversation_created_at")
        return
    _drop_references(bind)
    for table in TABLES:
        _strip(bind, table)
        bind.execute(text(f"ALTER TABLE {table} RENAME TO {table}_partitioned"))
    bind.execute(text("CREATE TABLE agent_conversations (LIKE agent_conversations_partitioned INCLUDING DEFAULTS)"
                      " WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01,"
                      " autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01)"))
    bind.execute(text("CREATE TABLE agent_messages (LIKE agent_messages_partitioned INCLUDING DEFAULTS)"))
    bind.execute(text("ALTER TABLE agent_messages DROP COLUMN conversation_created_at"))
    bind.execute(text("INSERT INTO agent_conversations SELECT * FROM agent_conversations_partitioned"))
    columns = ", ".join(c["name"] for c in inspect(bind).get_columns("agent_messages"))
    bind.execute(text(f"INSERT INTO agent_messages ({columns}) SELECT {columns} FROM agent_messages_partitioned"))
    _move_sequences(bind, suffix="partitioned")
    bind.execute(text("ALTER TABLE agent_conversations ADD CONSTRAINT pk_agent_conversations PRIMARY KEY (id)"))
    bind.execute(text("ALTER TABLE agent_messages ADD CONSTRAINT pk_agent_messages PRIMARY KEY (id)"))
    bind.execute(text("ALTER TABLE agent_messages ADD CONSTRAINT uq_agent_messages_idempotency_key "
                      "UNIQUE (idempotency_key)"))
    _build(bind, keys=False)
    for table in ("agent_messages", *REVIEW_TABLES):
        bind.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_conversation_id_agent_conversations "
                          "FOREIGN KEY (conversation_id) REFERENCES agent_conversations (id) ON DELETE CASCADE"))
    bind.execute(text("ANALYZE agent_conversations; ANALYZE agent_messages"))


def _drop_references(bind: Connection) -> None:
    """Drop every foreign key that refers to agent_conversations (messages and the review tables)."""
    insp = inspect(bind)
    for table in insp.get_table_names():
        for fk in insp.get_foreign_keys(table):
            if fk["referred_table"] == "agent_conversations" and fk["name"]:
                bind.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{fk["name"]}"'))


def _strip(bind: Connection, table: str) -> None:
    """Drop TABLE's indexes and keys (the rebuilt table takes their names; built once after the copy)."""
    insp = inspect(bind)
    for fk in insp.get_foreign_keys(table):
        bind.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{fk["name"]}"'))
    for uq in insp.get_unique_constraints(table):
        bind.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{uq["name"]}"'))
    pk = insp.get_pk_constraint(table).get("name")
    if pk:
        bind.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{pk}"'))
    for ix in insp.get_indexes(table):
        bind.execute(text(f'DROP INDEX IF EXISTS "{ix["name"]}"'))


def _move_sequences(bind: Connection, *, suffix: str) -> None:
    """The id sequences (kept by LIKE … INCLUDING DEFAULTS) now belong to the new tables; the old tables go."""
    for table in TABLES:
        bind.execute(text(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id"))
    for table in reversed(TABLES):
        bind.execute(text(f"DROP TABLE {table}_{suffix}"))


def _build(bind: Connection, *, keys: bool = True) -> None:
    """Keys (with KEYS) and indexes of the two tables as the models declare them for PostgreSQL, built once.
    isolate_from_table=False keeps the models' constraints inline for any later CREATE TABLE in this process."""
    from core.models import Base
    from core.models.partitioning import applies_to

    for name in TABLES:
        table = Base.metadata.tables[name]
        if keys:
            bind.execute(AddConstraint(table.primary_key, isolate_from_table=False))
        for constraint in table.constraints:
            wanted = isinstance(constraint, sa.UniqueConstraint) and keys or (
                isinstance(constraint, sa.ForeignKeyConstraint)
                and (keys or constraint.referred_table.name != "agent_conversations"))
            if wanted and applies_to(constraint, "postgresql"):
                bind.execute(AddConstraint(constraint, isolate_from_table=False))
        for index in table.indexes:
            if applies_to(index, "postgresql"):
                bind.execute(CreateIndex(index))
    bind.execute(text("ANALYZE agent_conversations; ANALYZE agent_messages"))
