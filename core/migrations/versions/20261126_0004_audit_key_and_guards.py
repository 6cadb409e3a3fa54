"""keyed audit chain and guards: key ids, TRUNCATE refused, the head only moves forward; stored secrets masked

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00

Existing records keep their plain sha256 and get no key id; the first record written after the upgrade is a keyed
"audit.rekey" record whose prev_hash is the last unkeyed hash, so an upgraded chain verifies as intact.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

HEAD_MOVES_FORWARD = """(NEW.id = OLD.id AND (
    (NEW.seq = OLD.seq AND NEW.last_hash = OLD.last_hash AND NEW.key_id IS NOT DISTINCT FROM OLD.key_id)
    OR (NEW.seq = OLD.seq + 1 AND EXISTS (SELECT 1 FROM agent_audit_log l WHERE l.seq = NEW.seq
        AND l.hash = NEW.last_hash AND l.prev_hash = OLD.last_hash))))"""

PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION agent_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION agent_audit_head_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'agent_audit_head: DELETE refused';
    ELSIF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM agent_audit_head) THEN
            RAISE EXCEPTION 'agent_audit_head holds one row: INSERT refused';
        END IF;
        RETURN NEW;
    ELSIF {HEAD_MOVES_FORWARD} THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'agent_audit_head only moves forward, one appended record at a time';
END;
$$ LANGUAGE plpgsql;
"""
PG_TRIGGERS = [
    "CREATE TRIGGER agent_audit_log_no_truncate BEFORE TRUNCATE ON agent_audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION agent_audit_no_truncate()",
    "CREATE TRIGGER agent_audit_head_no_truncate BEFORE TRUNCATE ON agent_audit_head "
    "FOR EACH STATEMENT EXECUTE FUNCTION agent_audit_no_truncate()",
    "CREATE TRIGGER agent_audit_head_guard BEFORE INSERT OR UPDATE OR DELETE ON agent_audit_head "
    "FOR EACH ROW EXECUTE FUNCTION agent_audit_head_guard()",
]
# SQLite has no TRUNCATE (DELETE is already refused); INSERT OR REPLACE would delete without firing DELETE triggers.
SQLITE_TRIGGERS = [
    "CREATE TRIGGER agent_audit_head_no_delete BEFORE DELETE ON agent_audit_head "
    "BEGIN SELECT RAISE(ABORT, 'agent_audit_head: DELETE refused'); END",
    "CREATE TRIGGER agent_audit_head_one_row BEFORE INSERT ON agent_audit_head "
    "WHEN (SELECT COUNT(*) FROM agent_audit_head) > 0 "
    "BEGIN SELECT RAISE(ABORT, 'agent_audit_head holds one row: INSERT refused'); END",
    "CREATE TRIGGER agent_audit_head_forward BEFORE UPDATE ON agent_audit_head "
    f"WHEN NOT {HEAD_MOVES_FORWARD.replace('IS NOT DISTINCT FROM', 'IS')} "
    "BEGIN SELECT RAISE(ABORT, 'agent_audit_head only moves forward, one appended record at a time'); END",
    "CREATE TRIGGER agent_audit_log_no_replace BEFORE INSERT ON agent_audit_log "
    "WHEN EXISTS (SELECT 1 FROM agent_audit_log WHERE id = NEW.id OR seq = NEW.seq) "
    "BEGIN SELECT RAISE(ABORT, 'agent_audit_log is append-only: REPLACE refused'); END",
]
SQLITE_TRIGGER_NAMES = ["agent_audit_head_no_delete", "agent_audit_head_one_row", "agent_audit_head_forward",
                        "agent_audit_log_no_replace"]


def upgrade() -> None:
    for table in ("agent_audit_log", "agent_audit_head"):
        op.add_column(table, sa.Column("key_id", sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTIONS)
        for sql in PG_TRIGGERS:
            op.execute(sql)
    else:
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)
    _mask_stored_secrets()


def _mask_stored_secrets() -> None:
    """Deploy-hook URLs in rollback runs and probe URLs were stored with their credentials (issue 9.1).

    The audit log cannot be rewritten (it is append-only and chained): rotate credentials that reached it."""
    from core.config import mask_url, mask_urls_in_text

    conn = op.get_bind()
    for run_id, details, outcome in conn.execute(sa.text("SELECT id, details, outcome FROM agent_rollback_runs")).all():
        details = json.loads(details) if isinstance(details, str) else (details or {})
        clean = {k: mask_urls_in_text(v) if isinstance(v, str) else v for k, v in details.items()}
        conn.execute(sa.text("UPDATE agent_rollback_runs SET details = :d, outcome = :o WHERE id = :i"),
                     {"d": json.dumps(clean), "o": mask_urls_in_text(outcome) if outcome else outcome, "i": run_id})
    for (url,) in conn.execute(sa.text("SELECT DISTINCT url FROM agent_health_probes")).all():
        if mask_url(url) != url:
            conn.execute(sa.text("UPDATE agent_health_probes SET url = :m WHERE url = :u"), {"m": mask_url(url), "u": url})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table in (("agent_audit_log_no_truncate", "agent_audit_log"),
                            ("agent_audit_head_no_truncate", "agent_audit_head"),
                            ("agent_audit_head_guard", "agent_audit_head")):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS agent_audit_head_guard()")
        op.execute("DROP FUNCTION IF EXISTS agent_audit_no_truncate()")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in ("agent_audit_head", "agent_audit_log"):  # plain ALTER: a batch copy would drop 0001's triggers
        op.execute(f"ALTER TABLE {table} DROP COLUMN key_id")
