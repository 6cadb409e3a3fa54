"""What the model is told: the template rendered with the client's, shop's and appointment's details."""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Select, select

from core.models import Agent, AgentInstance, AgentTemplate, Appointment, Barber, Client, Conversation, Shop
from core.templates import render
from core.text import counted

DEFAULTS = {"fee_amount": "$15", "holiday_name": "holidays", "holiday_hours": "our usual hours",
            "addon_service": "beard trim", "custom_message": ""}


@dataclass(frozen=True)
class Prompt:
    conversation_id: int
    agent_type: str
    shop_id: int
    system: str
    user: str
    fallback: str
    client_opted_out: bool
    attempts: int


def _slug(name: str) -> str:
    """'Uptown & Co.' -> 'uptown-co': a link's path from a shop's name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _shop_time(moment: datetime, zone: str | None) -> datetime:
    """MOMENT on the shop's clock: clients read appointment times in their shop's time zone, not UTC."""
    try:
        return moment.astimezone(ZoneInfo(zone or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return moment


def build_context(row: Any, now: datetime) -> dict[str, object]:
    """Template variables for one conversation, from the joined row of load_prompt."""
    last = row.starts_at or row.client_created_at
    days_since = max(0, (now - last).days)
    weeks, months = max(1, days_since // 7), max(1, days_since // 30)
    config = row.config or {}
    local = _shop_time(row.starts_at, row.shop_timezone) if row.starts_at else None
    return {
        **DEFAULTS, **{k: v for k, v in config.items() if isinstance(v, (str, int, float))},
        "client_first_name": row.first_name, "shop_name": row.shop_name,
        "barber_name": row.barber_name or "your barber",
        # The bare numbers stay for templates stored before the phrases ("1 week", not "1 weeks") existed.
        "weeks_since_visit": weeks, "months_since_visit": months,
        "since_visit_weeks": counted(weeks, "week"), "since_visit_months": counted(months, "month"),
        "booking_link": f"https://book.bookedbarber.com/{_slug(row.shop_name)}",
        "review_link": f"https://bookedbarber.com/r/{_slug(row.shop_name)}",
        "appointment_date": f"{local:%A, %b %d}" if local else "your next visit",
        "appointment_time": f"{local:%I:%M %p}".lstrip("0") if local else "",
        "service": row.service or "haircut",
    }


def _prompt_from(c: Any) -> Select:
    """The prompt's row for conversations C (the table, or the rows a claim just returned)."""
    return (select(c.id, c.agent_type, c.shop_id, c.channel, c.attempts, Client.first_name, Client.opted_out,
                   Client.created_at.label("client_created_at"), Shop.name.label("shop_name"),
                   Shop.timezone.label("shop_timezone"), Appointment.starts_at,
                   Appointment.service, Barber.name.label("barber_name"), AgentInstance.config)
            .join(Client, Client.id == c.client_id).join(Shop, Shop.id == c.shop_id)
            .join(AgentInstance, AgentInstance.id == c.agent_instance_id)
            .outerjoin(Appointment, Appointment.id == c.appointment_id)
            .outerjoin(Barber, Barber.id == Appointment.barber_id))


def _prompt_query(conversation_id: int) -> Select:
    return _prompt_from(Conversation).where(Conversation.id == conversation_id)


# What a claim returns so that its conversations' prompts are read in the same statement (PostgreSQL).
CLAIMED_COLUMNS = tuple(Conversation.__table__.c[name] for name in (
    "id", "agent_type", "shop_id", "channel", "attempts", "client_id", "agent_instance_id", "appointment_id"))


def claimed_prompt_query(claimed: Any) -> Select:
    """The prompt rows of the conversations in CLAIMED (a CTE over the claim's UPDATE … RETURNING)."""
    return _prompt_from(claimed.c)


class TemplateCache:
    """The newest template per agent type, re-read at most every TTL seconds (they change rarely)."""

    def __init__(self, ttl_seconds: float = 30.0) -> None:
        self._ttl, self._read_at, self._by_type = ttl_seconds, float("-inf"), {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, agent_type: str) -> Any:
        with self._lock:
            if time.monotonic() - self._read_at > self._ttl or agent_type not in self._by_type:
                rows = conn.execute(select(Agent.agent_type, AgentTemplate.system_prompt, AgentTemplate.initial_message,
                                           AgentTemplate.version).join(Agent, Agent.id == AgentTemplate.agent_id)
                                    .order_by(AgentTemplate.version)).all()
                self._by_type = {r.agent_type: r for r in rows}  # the last (newest) version wins
                self._read_at = time.monotonic()
            return self._by_type[agent_type]


@dataclass(frozen=True)
class Loaded:
    """What the database gives for one conversation: the joined row and its agent type's template."""

    row: Any
    template: Any


def read_conversation(conn: Connection, conversation_id: int, templates: TemplateCache) -> Loaded:
    """The database part of loading a conversation (retried on its own when the database blips)."""
    row = conn.execute(_prompt_query(conversation_id)).one()
    return Loaded(row, templates.get(conn, row.agent_type))


def render_prompt(loaded: Loaded, now: datetime) -> Prompt:
    """Render the conversation's template; raises MissingVariable when the context lacks one."""
    row, template = loaded.row, loaded.template
    ctx = build_context(row, now)
    where = f"{row.agent_type} template"
    fallback = render(template.initial_message, ctx, where=where)
    return Prompt(conversation_id=row.id, agent_type=row.agent_type, shop_id=row.shop_id,
                  system=render(template.system_prompt, ctx, where=where),
                  user=f"Write the {row.channel.upper()} message now. A message in the right spirit: {fallback}",
                  fallback=fallback, client_opted_out=row.opted_out, attempts=row.attempts)


def load_prompt(conn: Connection, conversation_id: int, now: datetime, templates: TemplateCache) -> Prompt:
    """Read and render in one go (benchmarks and tests)."""
    return render_prompt(read_conversation(conn, conversation_id, templates), now)
