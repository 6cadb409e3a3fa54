"""The agent's first message in a seeded conversation, rendered as the worker renders it: the client's own shop,
barber and service, and an appointment on the right side of the message (a reminder before it, a review after it)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, select

from core.models import Appointment, Barber, Client, Shop
from core.templates import TemplateSpec, render
from core.worker.context import build_context

# Where the appointment a template speaks of lies, from the moment the message is sent.
APPOINTMENT_OFFSET = {
    "appointment_reminder": timedelta(days=1), "upsell": timedelta(days=3), "no_show_fee": timedelta(days=-1),
    "review_request": timedelta(hours=-3), "rebooking": timedelta(weeks=-5), "retention": timedelta(days=-125),
}
OTHER_OFFSET = timedelta(days=-30)  # birthday, holiday and custom messages name no appointment
# Stand-ins the in-database load replaces with each message's own date and time (core.seed.sql_load).
DATE_MARK, TIME_MARK = "\x01appointment_date\x01", "\x01appointment_time\x01"


@dataclass(frozen=True)
class ClientFacts:
    """What a message says about one client: their name, shop, barber and service."""

    shop_id: int
    first_name: str
    created_at: datetime
    shop_name: str
    shop_timezone: str
    barber_name: str | None
    service: str | None


def client_facts(conn: Connection) -> dict[int, ClientFacts]:
    """Every client's facts by id (the seed's appointment of a client carries the client's id)."""
    rows = conn.execute(select(Client.id, Client.shop_id, Client.first_name, Client.created_at, Shop.name,
                               Shop.timezone, Barber.name.label("barber_name"), Appointment.service)
                        .join(Shop, Shop.id == Client.shop_id)
                        .outerjoin(Appointment, Appointment.id == Client.id)
                        .outerjoin(Barber, Barber.id == Appointment.barber_id))
    return {r.id: ClientFacts(r.shop_id, r.first_name, r.created_at, r.name, r.timezone, r.barber_name, r.service)
            for r in rows}


def appointment_at(agent_type: str, sent: datetime) -> datetime:
    """When the appointment a message of AGENT_TYPE sent at SENT speaks of starts (on the hour)."""
    return (sent + APPOINTMENT_OFFSET.get(agent_type, OTHER_OFFSET)).replace(minute=0, second=0, microsecond=0)


def first_message(spec: TemplateSpec, facts: ClientFacts, sent: datetime, config: Mapping[str, Any] | None = None,
                  *, marked_dates: bool = False) -> str:
    """The agent's first message to the client of FACTS, sent at SENT; MARKED_DATES leaves the appointment's date
    and time as DATE_MARK and TIME_MARK for the database to fill in."""
    row = SimpleNamespace(first_name=facts.first_name, client_created_at=facts.created_at, shop_name=facts.shop_name,
                          shop_timezone=facts.shop_timezone, barber_name=facts.barber_name, service=facts.service,
                          starts_at=appointment_at(spec.agent_type, sent), config=dict(config or {}))
    context = build_context(row, sent)
    if marked_dates:
        context.update(appointment_date=DATE_MARK, appointment_time=TIME_MARK)
    return render(spec.initial_message, context, where=f"{spec.agent_type} initial_message")
