"""Who sees a client's name, phone and e-mail in review: masking (initials, last two digits) and reveals."""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth import Actor, Role
from core.models import Client, Conversation, Message, RevealGrant, utcnow

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
    found = _client_pattern(first, last, phone, email)
    if found is None:
        return text
    pattern, masks = found
    return pattern.sub(lambda m: masks[m.group(0).lower()], text)


Shown = Callable[[Any], Any]  # text as the reader sees it (None stays None)


def redactor(client: Client | None) -> Shown:
    """Text as a reader who sees CLIENT masked reads it (that client's name, phone and e-mail masked); None: as is.
    Messages, notes, the judge's rationale and typed reasons may all name the client."""
    if client is None:
        return lambda text: text
    c = client
    return lambda text: redact_client(text, c.first_name, c.last_name, c.phone, c.email) if text else text


@functools.lru_cache(maxsize=1024)
def _client_pattern(first: str | None, last: str | None, phone: str | None,
                    email: str | None) -> tuple[re.Pattern[str], dict[str, str]] | None:
    """The pattern of a client's details and their masks by lowercased match (one compile per client, not per
    message: a masked search redacts hundreds of messages)."""
    masks = {p.strip(): f"{p.strip()[:1].upper()}." for p in (first, last) if p and len(p.strip()) > 1}
    masks |= {v: m(v) for v, m in ((phone, mask_phone), (email, mask_email)) if v}
    if not masks:
        return None
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(v)}(?!\w)" for v in sorted(masks, key=len, reverse=True)),
                         re.IGNORECASE)
    return pattern, {k.lower(): v for k, v in masks.items()}


def client_view(first: str, last: str, phone: str | None, email: str | None, *, masked: bool) -> dict[str, Any]:
    """The client as ACTOR may see them."""
    if masked:
        return {"name": mask_name(first, last), "phone": mask_phone(phone), "email": mask_email(email),
                "masked": True}
    return {"name": f"{first} {last}".strip(), "phone": phone or "–", "email": email or "–", "masked": False}



def search_words(text: str) -> set[str]:
    """The words of TEXT as a search compares them: case and accents folded, split at anything not a letter or
    digit (as the full-text indexes split them)."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return set(re.findall(r"\w+", "".join(ch for ch in folded if not unicodedata.combining(ch))))


def readable_matches(session: Session, *, actor: Actor, term: str, conversation_ids: Iterable[int]) -> set[int]:
    """Of CONVERSATION_IDS (found by searching TERM), those where TERM matches a message as ACTOR reads it: a masked
    reader does not find a conversation by its own client's name, phone or e-mail (the search would say who the
    client is) unless they revealed it. Every word of TERM must be in one message, as in the full-text search."""
    ids = set(conversation_ids)
    words = search_words(term)
    if not masks_pii(actor) or not words or not ids:
        return ids
    shown = revealed_conversations(session, actor=actor, conversation_ids=ids)
    c, cl, m = Conversation, Client, Message
    rows = session.execute(
        select(m.conversation_id, m.content, cl.first_name, cl.last_name, cl.phone, cl.email)
        .join(c, c.id == m.conversation_id).outerjoin(cl, cl.id == c.client_id)
        .where(m.conversation_id.in_(sorted(ids - shown))))
    readable = {conv_id for conv_id, content, *client in rows
                if words <= search_words(redact_client(content or "", *client))}
    return shown | readable
