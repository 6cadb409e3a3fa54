"""The audit trail: append-only records chained by hash, and the check that finds tampering."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.auth import Actor
from core.models import AuditHead, AuditRecord, utcnow

GENESIS = "0" * 64


def _canonical(rec: AuditRecord) -> str:
    fields = {
        "seq": rec.seq, "created_at": rec.created_at.isoformat(timespec="microseconds"),
        "actor": rec.actor, "actor_role": rec.actor_role, "source": rec.source, "action": rec.action,
        "target": rec.target, "outcome": rec.outcome, "reason": rec.reason,
        "before": rec.before, "after": rec.after, "prev_hash": rec.prev_hash,
    }
    return json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))


def record_hash(rec: AuditRecord) -> str:
    """The hash a record must carry: sha256 over its fields and the previous record's hash."""
    return hashlib.sha256(_canonical(rec).encode()).hexdigest()


def append(session: Session, *, actor: Actor, action: str, target: str = "", outcome: str = "ok",
           reason: str = "", before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None) -> AuditRecord:
    """Add an audit record to SESSION's transaction (the caller commits)."""
    # Bumping the head first takes its row lock (PostgreSQL) or the write lock (SQLite),
    # so concurrent writers chain their records one after another, never off the same tip.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = session.execute(select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    rec = AuditRecord(
        seq=head.seq, created_at=utcnow(), actor=actor.username,
        actor_role=actor.role.value, source=actor.source, action=action, target=target[:200],
        outcome=outcome, reason=reason, before=_jsonable(before), after=_jsonable(after), prev_hash=head.last_hash,
    )
    rec.hash = record_hash(rec)
    session.add(rec)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=rec.hash))
    return rec


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str = ""


def verify_chain(session: Session, *, batch: int = 5000) -> VerifyResult:
    """Walk the chain in order; report the first record that was edited, removed or inserted."""
    prev_hash, expected_seq, checked, last_id = GENESIS, 1, 0, 0
    while True:
        rows = session.scalars(select(AuditRecord).where(AuditRecord.id > last_id)
                               .order_by(AuditRecord.id).limit(batch)).all()
        if not rows:
            break
        for rec in rows:
            if rec.seq != expected_seq:
                return VerifyResult(False, checked, f"record #{expected_seq} is missing (found #{rec.seq} next)")
            if rec.prev_hash != prev_hash:
                return VerifyResult(False, checked, f"record #{rec.seq} does not follow record #{rec.seq - 1}")
            if record_hash(rec) != rec.hash:
                return VerifyResult(False, checked, f"record #{rec.seq} was edited after it was written")
            prev_hash, expected_seq, checked, last_id = rec.hash, expected_seq + 1, checked + 1, rec.id
        session.expunge_all()
    head = session.execute(select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    if head.seq != checked or head.last_hash != prev_hash:
        return VerifyResult(False, checked, f"the newest records were removed (head says #{head.seq}, log ends at #{checked})")
    return VerifyResult(True, checked)

