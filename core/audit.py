"""The audit trail: append-only records chained by HMAC, and the check that finds tampering.

Each record carries the previous record's hash and is sealed with HMAC-SHA256 under AUDIT_KEY, which lives outside
the database: whoever can write to the database can still delete or edit rows, but cannot write a record (or
recompute a chain) that verifies. Records written before keying carry no key id and a plain sha256; the first keyed
record ("audit.rekey") seals them. What the chain cannot show by itself (the newest records removed and the head
moved back) is caught by the anchors kept outside the database (core.audit_anchor)."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.audit_anchor import Anchor, last_anchor
from core.audit_keys import AuditKeys, audit_keys
from core.auth import Actor, Role
from core.config import get_settings
from core.errors import UserInputError
from core.models import AuditHead, AuditRecord, utcnow

GENESIS = "0" * 64
UNKEYED = "unkeyed sha256"
CHAIN_ACTOR = Actor(username="audit", role=Role.SYSTEM, source="audit")


def _canonical(rec: AuditRecord) -> bytes:
    fields = {
        "seq": rec.seq, "created_at": rec.created_at.isoformat(timespec="microseconds"),
        "actor": rec.actor, "actor_role": rec.actor_role, "source": rec.source, "action": rec.action,
        "target": rec.target, "outcome": rec.outcome, "reason": rec.reason,
        "before": rec.before, "after": rec.after, "prev_hash": rec.prev_hash,
    }
    if rec.key_id is not None:  # keyed records also seal which key sealed them
        fields["key_id"] = rec.key_id
    return json.dumps(fields, sort_keys=True, default=str, separators=(",", ":")).encode()


def record_hash(rec: AuditRecord, keys: AuditKeys) -> str | None:
    """The hash REC must carry: HMAC-SHA256 under its key, sha256 for a record from before keying.

    None when REC names a key that is not configured (it cannot be checked)."""
    if rec.key_id is None:
        return hashlib.sha256(_canonical(rec)).hexdigest()
    key = keys.by_id.get(rec.key_id)
    return None if key is None else hmac.new(key, _canonical(rec), hashlib.sha256).hexdigest()


def append(session: Session, *, actor: Actor, action: str, target: str = "", outcome: str = "ok",
           reason: str = "", before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None) -> AuditRecord:
    """Add an audit record to SESSION's transaction (the caller commits)."""
    # A no-op write on the head first takes its row lock (PostgreSQL) or the write lock (SQLite),
    # so concurrent writers chain their records one after another, never off the same tip.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    seq, last_hash, head_key = session.execute(
        select(AuditHead.seq, AuditHead.last_hash, AuditHead.key_id).where(AuditHead.id == 1)).one()
    keys = audit_keys()
    _known_head_key(head_key, keys)
    if seq and head_key != keys.current_id:  # after an upgrade or a key rotation: seal what came before
        sealed = _chain(session, keys, seq=seq, prev_hash=last_hash, actor=CHAIN_ACTOR, action="audit.rekey",
                        target="agent_audit_log", outcome="ok", reason="records from here on are sealed with a new key",
                        before={"key_id": head_key or UNKEYED}, after={"key_id": keys.current_id})
        seq, last_hash = sealed.seq, sealed.hash
    return _chain(session, keys, seq=seq, prev_hash=last_hash, actor=actor, action=action, target=target,
                  outcome=outcome, reason=reason, before=before, after=after)


def _known_head_key(head_key: str | None, keys: AuditKeys) -> None:
    """Outside development, refuse to write after a head sealed with a key that is neither AUDIT_KEY nor one of
    AUDIT_PREVIOUS_KEYS: one command run with a mistyped key re-keyed the chain, and every later `audit verify` with
    the right key reported it broken. (A development key is disposable: a lost one is re-keyed as before.)"""
    if head_key in (None, "", UNKEYED) or head_key in keys.by_id or get_settings().environment == "development":
        return
    raise UserInputError(f"AUDIT_KEY is not the key that sealed the audit trail's last record (key id {head_key}); "
                         "nothing was done. Set AUDIT_KEY to that key, or after a rotation put it in "
                         "AUDIT_PREVIOUS_KEYS.")


def _chain(session: Session, keys: AuditKeys, *, seq: int, prev_hash: str, actor: Actor, action: str, target: str,
           outcome: str, reason: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> AuditRecord:
    rec = AuditRecord(
        seq=seq + 1, created_at=utcnow(), actor=actor.username[:100], actor_role=actor.role.value,
        source=actor.source[:16], action=action[:64], target=target[:200], outcome=outcome, reason=reason,
        before=_jsonable(before), after=_jsonable(after), prev_hash=prev_hash, key_id=keys.current_id,
    )
    rec.hash = record_hash(rec, keys)
    session.add(rec)
    session.flush()  # the head's guard (a trigger) checks that the record it points at exists
    session.execute(update(AuditHead).where(AuditHead.id == 1)
                    .values(seq=rec.seq, last_hash=rec.hash, key_id=keys.current_id))
    return rec


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS
    unkeyed: int = 0  # records from before keying (sealed by the first keyed record after them)
    anchor: Anchor | None = None  # the newest checkpoint this run compared against


class _Walk:
    """The chain as verify_chain walks it, record by record."""

    def __init__(self, keys: AuditKeys, anchor: Anchor | None) -> None:
        self.keys, self.anchor = keys, anchor
        self.prev_hash, self.checked, self.unkeyed, self.keyed = GENESIS, 0, 0, False

    def step(self, rec: AuditRecord) -> str:
        """The problem with REC, or '' when it follows correctly."""
        n = self.checked + 1
        if rec.seq != n:
            return f"record #{n} is missing (found #{rec.seq} next)"
        if rec.prev_hash != self.prev_hash:
            return f"record #{rec.seq} does not follow record #{rec.seq - 1}"
        if rec.key_id is None and self.keyed:
            return f"record #{rec.seq} carries no key although the chain was keyed before it: it was forged"
        expected = record_hash(rec, self.keys)
        if expected is None:
            return (f"record #{rec.seq} is sealed with key id {rec.key_id}, which is neither AUDIT_KEY nor in "
                    "AUDIT_PREVIOUS_KEYS")
        if not hmac.compare_digest(expected, rec.hash):
            return f"record #{rec.seq} was edited after it was written, or written without the key"
        if self.anchor and rec.seq == self.anchor.seq and rec.hash != self.anchor.hash:
            return f"record #{rec.seq} differs from its anchor {self.anchor.describe()}: the log was rewritten"
        self.keyed = self.keyed or rec.key_id is not None
        self.unkeyed += rec.key_id is None
        self.prev_hash, self.checked = rec.hash, n
        return ""

    def finish(self, head_seq: int, head_hash: str) -> str:
        """The problem with the end of the chain: the head, then the anchor."""
        if head_seq != self.checked or head_hash != self.prev_hash:
            return f"the newest records were removed (head says #{head_seq}, log ends at #{self.checked})"
        if self.anchor and self.anchor.seq > self.checked:
            return (f"the log ends at #{self.checked} but reached {self.anchor.describe()}: the newest records "
                    "were removed and the head moved back")
        return ""


def verify_chain(session: Session, *, batch: int = 5000, anchors: Path | None = None) -> VerifyResult:
    """Walk the chain in order; report the first record that was edited, removed, inserted or forged, and a log
    that ends before its last anchor (AUDIT_ANCHOR_PATH, or ANCHORS)."""
    walk, last_id = _Walk(audit_keys(), last_anchor(session.get_bind(), anchors)), 0
    head_seq, head_hash = session.execute(select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()

    def result(problem: str) -> VerifyResult:
        return VerifyResult(not problem, walk.checked, problem, head_seq, head_hash, walk.unkeyed, walk.anchor)

    while True:
        rows = session.scalars(select(AuditRecord).where(AuditRecord.id > last_id)
                               .order_by(AuditRecord.id).limit(batch)).all()
        if not rows:
            break
        for rec in rows:
            problem = walk.step(rec)
            if problem:
                return result(problem)
            last_id = rec.id
        session.expunge_all()
    return result(walk.finish(head_seq, head_hash))
