"""Conversations and the client data behind them, only for callers with access to the client's shop."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.errors import NotFound, PermissionDenied
from core.inputs import is_row_id
from core.models import Client, Conversation, Message
from core.queries.privacy import mask_email, mask_name, mask_phone, redactor
from core.queries.scope import require_read


def get_conversation_or_raise(session: Session, *, actor: Actor, conversation_id: int) -> dict[str, Any]:
    """One conversation with its messages and client; PermissionDenied outside the actor's shops."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    conv = session.get(Conversation, conversation_id) if is_row_id(conversation_id) else None
    if conv is None:
        raise NotFound(f"No conversation with id {conversation_id}.")
    if not actor.sees_shop(conv.shop_id):
        raise PermissionDenied(f"{actor.username} has no access to the clients of shop {conv.shop_id}.")
    client = session.get(Client, conv.client_id)
    messages = session.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.created_at))
    # The API masks for product owners (the design's role table; the console also masks engineers and admins, who
    # can reveal there), as the console does: names, phone, e-mail, and the client's details inside the messages.
    masked = actor.masks_pii
    details = (client.first_name, client.last_name, client.phone, client.email)
    shown = redactor(client if masked else None)
    return {
        "id": conv.id, "shop_id": conv.shop_id, "agent_type": conv.agent_type, "channel": conv.channel,
        "status": conv.status, "created_at": conv.created_at, "completed_at": conv.completed_at,
        "response_time_ms": conv.response_time_ms, "provider": conv.provider, "error": conv.error,
        "client": {"id": client.id, "opted_out": client.opted_out, **_client_fields(*details, masked=masked)},
        "messages": [{"role": m.role, "content": shown(m.content), "created_at": m.created_at} for m in messages],
        "pii_masked": masked,
    }


def _client_fields(first: str, last: str, phone: str | None, email: str | None, *, masked: bool) -> dict[str, Any]:
    if not masked:
        return {"first_name": first, "last_name": last, "phone": phone, "email": email}
    return {"first_name": mask_name(first, None), "last_name": mask_name(last, None), "phone": mask_phone(phone),
            "email": mask_email(email)}
