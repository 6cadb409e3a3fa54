"""Conversations and the client data behind them, only for callers with access to the client's shop."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.errors import NotFound, PermissionDenied
from core.inputs import is_row_id
from core.models import Client, Conversation, Message
from core.queries.scope import require_read


def mask_phone(phone: str | None) -> str | None:
    """+15550001234 → +1•••••••1234."""
    return None if not phone else phone[:2] + "•" * max(0, len(phone) - 6) + phone[-4:]


def mask_email(email: str | None) -> str | None:
    """marcus@example.com → m•••@example.com."""
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return f"{local[:1]}•••@{domain}"


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
    masked = actor.masks_pii
    return {
        "id": conv.id, "shop_id": conv.shop_id, "agent_type": conv.agent_type, "channel": conv.channel,
        "status": conv.status, "created_at": conv.created_at, "completed_at": conv.completed_at,
        "response_time_ms": conv.response_time_ms, "provider": conv.provider, "error": conv.error,
        "client": {"id": client.id, "first_name": client.first_name,
                   "last_name": client.last_name[:1] + "." if masked else client.last_name,
                   "phone": mask_phone(client.phone) if masked else client.phone,
                   "email": mask_email(client.email) if masked else client.email, "opted_out": client.opted_out},
        "messages": [{"role": m.role, "content": m.content, "created_at": m.created_at} for m in messages],
        "pii_masked": masked,
    }
