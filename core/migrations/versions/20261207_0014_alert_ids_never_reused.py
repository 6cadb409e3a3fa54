"""alerts: on SQLite a removed rule's or alert's id is never given to a new one (AUTOINCREMENT)

SQLite gives a new row the largest id in the table plus one, so after a rule with the newest alerts was removed
the next alert got the id of a removed one: an "ack 12" from an old notification, or a page drawn before the
removal, acknowledged an unrelated alert. AUTOINCREMENT keeps the largest id ever given. PostgreSQL's sequences
never reuse an id: nothing changes there.

SQLite cannot add AUTOINCREMENT to a table in place, and with foreign keys on (they cannot be switched off inside
the migration's transaction) dropping a table cascades into its children while renaming one rewrites their
references. So the rules, their alerts and the alerts' history are copied aside, dropped children first (nothing is
left to cascade into), made again from their reflected definitions with AUTOINCREMENT, and filled back in.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 13:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FAMILY = ("agent_alert_rules", "agent_alert_states", "agent_alert_history")  # parents first
AUTOINCREMENT = {"agent_alert_rules", "agent_alert_states"}


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    meta = sa.MetaData()
    tables = [sa.Table(name, meta, autoload_with=conn) for name in FAMILY]
    for table in tables:
        conn.exec_driver_sql(f'CREATE TEMPORARY TABLE "{table.name}__copy" AS SELECT * FROM "{table.name}"')
    for table in reversed(tables):  # children first: each drop finds nothing left that refers to it
        conn.exec_driver_sql(f'DROP TABLE "{table.name}"')
    for table in tables:
        if table.name in AUTOINCREMENT:
            table.dialect_options["sqlite"]["autoincrement"] = True
        table.create(conn)  # with its keys, checks and indexes as reflected
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM "{table.name}__copy"')
        conn.exec_driver_sql(f'DROP TABLE "{table.name}__copy"')


def downgrade() -> None:
    pass  # AUTOINCREMENT only stops reuse; 0013's code works with it
