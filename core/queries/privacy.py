"""Who sees a client's name, phone and e-mail in review: masking (initials, last two digits) and reveals."""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from core.auth import Actor, Role
from core.models import Client, Conversation, RevealGrant, utcnow

DOT = "•"
# Support reads their assigned shops' clients in full; these roles read every shop, so they see client data masked
# unless they reveal it (break-glass). The shell operator (system) holds the database credentials already.
MASKED_ROLES = frozenset({Role.PRODUCT_OWNER, Role.ENGINEER, Role.ADMIN})


def mask_name(first: str | None, last: str | None) -> str:
    """Marcus Johnson → M. J."""
    return " ".join(f"{p.strip()[:1].upper()}." for p in (first, last) if p and p.strip()) or "–"


def mask_phone(phone: str | None) -> str:
    """+15550001234 → •••••••••34."""
    if not phone:
        return "–"
    digits = [c for c in phone if c.isdigit()]
    return DOT * max(0, len(digits) - 2) + "".join(digits[-2:])


def mask_email(email: str | None) -> str:
    """marcus@example.com → m•••@e•••."""
    if not email or "@" not in email:
        return "–" if not email else DOT * 3
    local, domain = email.split("@", 1)
    return f"{local[:1]}{DOT * 3}@{domain[:1]}{DOT * 3}"


def masks_pii(actor: Actor) -> bool:
    """True when ACTOR sees client data masked unless revealed."""
    return actor.role in MASKED_ROLES or actor.masks_pii


def revealed_conversations(session: Session, *, actor: Actor, conversation_ids: Iterable[int],
                           now: datetime | None = None) -> set[int]:
    """Of CONVERSATION_IDS, those ACTOR holds an unexpired reveal for."""
    ids = sorted(set(conversation_ids))
    if not ids or not masks_pii(actor):
        return set()
    rows = session.scalars(select(RevealGrant.conversation_id).where(
        RevealGrant.username == actor.username, RevealGrant.conversation_id.in_(ids),
        RevealGrant.expires_at > (now or utcnow())))
    return set(rows)


def redact_client(text: str, first: str | None, last: str | None, phone: str | None, email: str | None) -> str:
    """TEXT with the client's own name, phone and e-mail masked where they appear (messages greet clients by name),
    as client_view masks them in the header: whole words, any case."""
    masks = {p.strip(): f"{p.strip()[:1].upper()}." for p in (first, last) if p and len(p.strip()) > 1}
    masks |= {v: m(v) for v, m in ((phone, mask_phone), (email, mask_email)) if v}
    if not masks:
        return text
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(v)}(?!\w)" for v in sorted(masks, key=len, reverse=True)),
                         re.IGNORECASE)
    lowered = {k.lower(): v for k, v in masks.items()}
    return pattern.sub(lambda m: lowered[m.group(0).lower()], text)


def client_view(first: str, last: str, phone: str | None, email: str | None, *, masked: bool) -> dict[str, Any]:
    """The client as ACTOR may see them."""
    if masked:
        return {"name": mask_name(first, last), "phone": mask_phone(phone), "email": mask_email(email),
                "masked": True}
    return {"name": f"{first} {last}".strip(), "phone": phone or "–", "email": email or "–", "masked": False}


def unmasked_matches(actor: Actor, term: str, now: datetime | None = None) -> list[ColumnElement]:
    """For a masked reader, conditions that keep a search from finding a conversation by its own client's name, phone
    or e-mail (masked in what they read) unless they revealed it; nothing for everyone else."""
    if not masks_pii(actor):
        return []
    words = {w.lower() for w in term.split()} | {w.strip(".,;:!?\"'()").lower() for w in term.split()}
    cl = Client
    own = exists().where(cl.id == Conversation.client_id, or_(
        func.lower(cl.first_name).in_(words), func.lower(cl.last_name).in_(words), cl.phone.in_(words),
        func.lower(cl.email).in_(words)))
    revealed = exists().where(RevealGrant.conversation_id == Conversation.id,
                              RevealGrant.username == actor.username, RevealGrant.expires_at > (now or utcnow()))
    return [or_(~own, revealed)]
