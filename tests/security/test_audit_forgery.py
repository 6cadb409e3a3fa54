"""9.7: someone with write access to the database cannot make `audit verify` say "intact" after tampering.

The attacker knows the algorithm (the code is public) but not AUDIT_KEY, which lives outside the database."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DatabaseError

from core import audit
from core.auth import system_actor
from core.cli import main
from core.uow import UnitOfWork

FIELDS = ("seq", "created_at", "actor", "actor_role", "source", "action", "target", "outcome", "reason", "before",
          "after", "prev_hash")


def write_records(engine: Engine, n: int) -> None:
    for i in range(n):
        with UnitOfWork(engine) as uow:
            audit.append(uow.session, actor=system_actor("test"), action="probe", target=f"t{i}", after={"i": i})
            uow.commit()


@contextmanager
def no_triggers(engine: Engine, backend: str) -> Iterator[Connection]:
    """A superuser's connection with the guard triggers bypassed (PostgreSQL) or dropped (SQLite)."""
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for (name,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                             "AND tbl_name IN ('agent_audit_log', 'agent_audit_head')")).all():
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        yield conn


def unkeyed_hash(row: dict) -> str:
    """What the attacker can compute: sha256 over the record's fields, as the code does without a key."""
    fields = {k: row[k] for k in FIELDS}
    created = row["created_at"]  # SQLite hands raw text back, PostgreSQL an aware datetime
    created = datetime.fromisoformat(created) if isinstance(created, str) else created
    fields["created_at"] = created.astimezone(timezone.utc).isoformat(timespec="microseconds")
    for k in ("before", "after"):
        fields[k] = json.loads(fields[k]) if isinstance(fields[k], str) else fields[k]
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def rows(conn: Connection) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM agent_audit_log ORDER BY seq"))]


def rows_of_head(conn: Connection) -> dict:
    return dict(conn.execute(text("SELECT * FROM agent_audit_head")).one()._mapping)


def rehash_from(conn: Connection, seq: int) -> None:
    """Recompute every hash from SEQ on, and the head, as an attacker covering an edit would."""
    prev = None
    for row in rows(conn):
        if row["seq"] >= seq:
            row["prev_hash"] = prev
            row["hash"] = unkeyed_hash(row)
            conn.execute(text("UPDATE agent_audit_log SET prev_hash = :p, hash = :h WHERE seq = :s"),
                         {"p": row["prev_hash"], "h": row["hash"], "s": row["seq"]})
        prev = row["hash"]
    conn.execute(text("UPDATE agent_audit_head SET seq = :s, last_hash = :h"), {"s": row["seq"], "h": prev})


def verify(capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["audit", "verify"])
    return code, capsys.readouterr().out


@pytest.fixture
def anchored(engine: Engine, capsys: pytest.CaptureFixture) -> Engine:
    """Five records, verified once (which anchors the head outside the database)."""
    write_records(engine, 5)
    code, out = verify(capsys)
    assert code == 0, out
    return engine


def test_truncate_and_head_rewind_are_refused_by_the_database(anchored: Engine, backend: str) -> None:
    statements = ["UPDATE agent_audit_head SET seq = 0, last_hash = :genesis",
                  "DELETE FROM agent_audit_head",
                  "UPDATE agent_audit_head SET seq = seq + 1"]
    statements.append("TRUNCATE agent_audit_log" if backend == "postgresql" else "DELETE FROM agent_audit_log")
    if backend == "postgresql":
        statements += ["TRUNCATE agent_audit_head",
                       "INSERT INTO agent_audit_log SELECT * FROM agent_audit_log WHERE seq = 2 "
                       "ON CONFLICT (id) DO UPDATE SET reason = 'rewritten'"]
    else:  # REPLACE deletes the old row without firing DELETE triggers
        statements += ["INSERT OR REPLACE INTO agent_audit_log SELECT * FROM agent_audit_log WHERE seq = 2",
                       "INSERT OR REPLACE INTO agent_audit_head (id, seq, last_hash) VALUES (1, 0, :genesis)"]
    for sql in statements:
        with pytest.raises(DatabaseError):
            with anchored.begin() as conn:
                conn.execute(text(sql), {"genesis": "0" * 64})
    with anchored.connect() as conn:
        assert conn.execute(text("SELECT seq FROM agent_audit_head")).scalar_one() == 5


def test_an_appended_record_with_a_correct_unkeyed_hash_is_found(anchored: Engine, backend: str,
                                                                  capsys: pytest.CaptureFixture) -> None:
    with no_triggers(anchored, backend) as conn:
        last = rows(conn)[-1]
        forged = {**last, "id": last["id"] + 1, "seq": 6, "actor": "admin", "action": "rollback.database.approve",
                  "target": "run 1", "prev_hash": last["hash"]}
        forged.update({"key_id": None} if "key_id" in last else {})
        forged["hash"] = unkeyed_hash(forged)
        cols = ", ".join(forged)
        conn.execute(text(f"INSERT INTO agent_audit_log ({cols}) VALUES ({', '.join(':' + c for c in forged)})"),
                     {**forged, "before": json.dumps(forged["before"]), "after": json.dumps(forged["after"])})
        conn.execute(text("UPDATE agent_audit_head SET seq = 6, last_hash = :h"), {"h": forged["hash"]})
    code, out = verify(capsys)
    assert code == 1 and "record #6" in out, out


def test_an_edited_record_with_the_chain_recomputed_is_found(anchored: Engine, backend: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    with no_triggers(anchored, backend) as conn:
        conn.execute(text("UPDATE agent_audit_log SET reason = 'nothing happened' WHERE seq = 3"))
        rehash_from(conn, 3)
    code, out = verify(capsys)
    assert code == 1 and "record #3" in out, out


def test_deleting_the_tail_and_rewinding_the_head_is_found_by_the_anchor(anchored: Engine, backend: str,
                                                                         capsys: pytest.CaptureFixture) -> None:
    with no_triggers(anchored, backend) as conn:
        conn.execute(text("DELETE FROM agent_audit_log WHERE seq > 3"))
        hash3 = conn.execute(text("SELECT hash FROM agent_audit_log WHERE seq = 3")).scalar_one()
        conn.execute(text("UPDATE agent_audit_head SET seq = 3, last_hash = :h"), {"h": hash3})
    code, out = verify(capsys)
    assert code == 1 and "anchored" in out and "#5" in out, out


def test_truncating_everything_and_starting_over_is_found_by_the_anchor(anchored: Engine, backend: str,
                                                                        capsys: pytest.CaptureFixture) -> None:
    with no_triggers(anchored, backend) as conn:
        conn.execute(text("DELETE FROM agent_audit_log"))
        conn.execute(text("UPDATE agent_audit_head SET seq = 0, last_hash = :g"), {"g": "0" * 64})
        if "key_id" in rows_of_head(conn):
            conn.execute(text("UPDATE agent_audit_head SET key_id = NULL"))
    write_records(anchored, 6)  # a fresh, internally consistent chain, longer than the old one
    code, out = verify(capsys)
    assert code == 1 and "#5" in out and "anchor" in out, out


def test_verify_prints_the_head_hash_and_anchors_it(anchored: Engine, capsys: pytest.CaptureFixture,
                                                    tmp_path) -> None:
    write_records(anchored, 2)
    code, out = verify(capsys)
    with anchored.connect() as conn:
        head = conn.execute(text("SELECT last_hash FROM agent_audit_head")).scalar_one()
    assert code == 0 and "7 records" in out and head in out
    from core.audit_anchor import anchor_path

    lines = [json.loads(line) for line in anchor_path().read_text().splitlines()]
    assert [(a["seq"], a["hash"]) for a in lines][-1] == (7, head)
    assert lines[-2]["seq"] == 5


def test_metrics_expose_the_head(anchored: Engine) -> None:
    from fastapi.testclient import TestClient

    from core.api import create_app

    body = TestClient(create_app(engine=anchored)).get("/metrics").text
    with anchored.connect() as conn:
        head = conn.execute(text("SELECT last_hash FROM agent_audit_head")).scalar_one()
    assert "agentops_audit_head_seq 5.0" in body
    prefix = float(next(line.split()[1] for line in body.splitlines()
                        if line.startswith("agentops_audit_head_hash_prefix ")))
    assert prefix == int(head[:12], 16)
