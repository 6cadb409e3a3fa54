"""Writing many rows into the two big tables on PostgreSQL: their secondary indexes and constraints are set aside
(dropped inside the caller's transaction) and built once at the end, which is several times cheaper than keeping
eight indexes, a full-text index and the foreign keys current row by row. Used by the load seed and `db restore`."""
from __future__ import annotations

from sqlalchemy import Connection, UniqueConstraint
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex, ExecutableDDLElement

from core.models import Base
from core.models.partitioning import applies_to

BIG_TABLES = ("agent_conversations", "agent_messages")


def set_aside(conn: Connection) -> list[ExecutableDDLElement]:
    """Drop the big tables' secondary indexes, unique and foreign-key constraints (in this transaction): checked or
    kept row by row they cost far more than the rows (an FK check locks the referenced row for every insert).
    Returns the statements that build them again, from the models, indexes first; a failure to build one (a
    duplicate key, a missing parent) fails the caller's transaction, as the row would have."""
    tables = [Base.metadata.tables[name] for name in BIG_TABLES]
    pg = "postgresql"  # only the keys this database has (core.models.partitioning)
    indexes = [ix for t in tables for ix in t.indexes if applies_to(ix, pg)]
    uniques = [c for t in tables for c in t.constraints if isinstance(c, UniqueConstraint) and applies_to(c, pg)]
    fks = [fk for t in tables for fk in t.foreign_key_constraints if applies_to(fk, pg)]
    for c in [*fks, *uniques]:
        conn.execute(DropConstraint(c))
    for ix in indexes:
        conn.execute(DropIndex(ix))
    # isolate_from_table=False: by default AddConstraint marks the model's constraint "never inline", and every
    # later CREATE TABLE in this process (a restore's create_all, on any database) would leave it out.
    return [*(CreateIndex(ix) for ix in indexes),
            *(AddConstraint(c, isolate_from_table=False) for c in [*uniques, *fks])]
