"""What the model is told: the template rendered with the client's, shop's and appointment's details."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Agent, AgentInstance, AgentTemplate, Appointment, Barber, Client, Conversation, Shop
from core.templates import render

DEFAULTS = {"fee_amount": "$15", "holiday_name": "the holidays", "holiday_hours": "our usual hours",
            "addon_service": "beard trim", "custom_message": ""}


@dataclass(frozen=True)
class Prompt:
    conversation_id: int
    system: str
    user: str
    fallback: str
    client_opted_out: bool


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower().replace(" ", "-") if ch.isalnum() or ch == "-")


def build_context(conv: Conversation, client: Client, shop: Shop, appt: Appointment | None, barber: Barber | None,
                  instance_config: dict, now: datetime) -> dict[str, object]:
    """Template variables for one conversation."""
    last = appt.starts_at if appt else client.created_at
    days_since = max(0, (now - last).days)
    return {
        **DEFAULTS, **{k: v for k, v in instance_config.items() if isinstance(v, (str, int, float))},
        "client_first_name": client.first_name, "shop_name": shop.name,
        "barber_name": barber.name if barber else "your barber",
        "weeks_since_visit": max(1, days_since // 7), "months_since_visit": max(1, days_since // 30),
        "booking_link": f"https://book.bookedbarber.com/{_slug(shop.name)}",
        "review_link": f"https://bookedbarber.com/r/{_slug(shop.name)}",
        "appointment_date": f"{appt.starts_at:%A, %b %d}" if appt else "your next visit",
        "appointment_time": f"{appt.starts_at:%I:%M %p}".lstrip("0") if appt else "",
        "service": appt.service if appt else "haircut",
    }


def load_prompt(session: Session, conversation_id: int, now: datetime) -> Prompt:
    """Render the conversation's template; raises MissingVariable when the context lacks one."""
    conv = session.get(Conversation, conversation_id)
    client, shop = session.get(Client, conv.client_id), session.get(Shop, conv.shop_id)
    appt = session.get(Appointment, conv.appointment_id) if conv.appointment_id else None
    barber = session.get(Barber, appt.barber_id) if appt and appt.barber_id else None
    instance = session.get(AgentInstance, conv.agent_instance_id)
    template = session.scalars(select(AgentTemplate).join(Agent, Agent.id == AgentTemplate.agent_id)
                               .where(Agent.agent_type == conv.agent_type)
                               .order_by(AgentTemplate.version.desc()).limit(1)).one()
    ctx = build_context(conv, client, shop, appt, barber, instance.config or {}, now)
    where = f"{conv.agent_type} template"
    fallback = render(template.initial_message, ctx, where=where)
    return Prompt(conversation_id=conv.id, system=render(template.system_prompt, ctx, where=where),
                  user=f"Write the {conv.channel.upper()} message now. A message in the right spirit: {fallback}",
                  fallback=fallback, client_opted_out=client.opted_out)
