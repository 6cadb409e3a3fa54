"""Seeded conversations read like the worker's own: each names its client's shop and barber, and a reminder comes
before its appointment, a no-show notice after it (the demo used to name "Fade Factory" in every shop)."""
from __future__ import annotations

import re
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from core.auth import system_actor
from core.db import read_session
from core.models import Agent, AgentTemplate, Appointment, Barber, Client, Conversation, Message, Shop
from core.seed.runner import seed
from core.templates import load_templates
from core.uow import UnitOfWork
from core.worker.context import TemplateCache

ACTOR = system_actor("test")
DATE = re.compile(r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, [A-Z][a-z]{2} \d{2}\b")


def _messages(engine: Engine) -> list:
    with read_session(engine) as s:
        return s.execute(
            select(Conversation.agent_type, Message.content, Message.created_at, Shop.name.label("shop"),
                   Shop.timezone, Barber.name.label("barber"))
            .join(Message, Message.conversation_id == Conversation.id).join(Shop, Shop.id == Conversation.shop_id)
            .join(Client, Client.id == Conversation.client_id)
            .join(Appointment, Appointment.id == Conversation.appointment_id)
            .join(Barber, Barber.id == Appointment.barber_id).where(Message.role == "agent")).all()


def _day_named(text: str, sent_on: date) -> date:
    """The day within half a year of SENT_ON that TEXT's "Friday, Nov 27" names."""
    named = DATE.search(text)
    assert named, text
    days = [sent_on + timedelta(days=k) for k in range(-183, 184)]
    return next(d for d in days if f"{d:%A, %b %d}" == named.group())


def test_each_seeded_message_names_its_own_shop_and_barber_and_a_sensible_date(engine: Engine) -> None:
    seed(actor=ACTOR, engine=engine, size="demo", conversations=600)
    rows = _messages(engine)
    shops = {r.shop for r in rows}
    assert len(shops) > 2 and {r.agent_type for r in rows} == set(load_templates())
    specs = load_templates()
    for r in rows:
        assert not [s for s in shops - {r.shop} if s in r.content], r.content
        if "{shop_name}" in specs[r.agent_type].initial_message:
            assert r.shop in r.content, r.content
        if "{booking_link}" in specs[r.agent_type].initial_message:
            assert f"/{r.shop.split()[0].lower()}-" in r.content, r.content
        assert not re.search(r"\b1 (weeks|months)\b", r.content) and not r.content.rstrip().endswith(":"), r.content
        if r.agent_type in ("rebooking", "review_request", "appointment_reminder"):
            assert r.barber in r.content, r.content
        sent_on = r.created_at.astimezone(ZoneInfo(r.timezone)).date()
        if r.agent_type in ("appointment_reminder", "upsell"):
            assert _day_named(r.content, sent_on) > sent_on, r.content
        if r.agent_type == "no_show_fee":
            assert _day_named(r.content, sent_on) < sent_on, r.content


def test_a_seed_over_an_older_catalogue_stores_the_fixed_template_as_the_next_version(engine: Engine) -> None:
    seed(actor=ACTOR, engine=engine, size="minimal", conversations=0)
    with UnitOfWork(engine) as uow:  # the rebooking template as shipped before "1 weeks" was fixed
        agent_id = uow.session.scalar(select(Agent.id).where(Agent.agent_type == "rebooking"))
        uow.session.execute(update(AgentTemplate).where(AgentTemplate.agent_id == agent_id).values(
            initial_message="Hi {client_first_name}, it's been {weeks_since_visit} weeks since your last cut."))
        uow.commit()
    seed(actor=ACTOR, engine=engine, size="minimal", conversations=0)
    with read_session(engine) as s:
        versions = s.scalars(select(AgentTemplate.version).where(AgentTemplate.agent_id == agent_id)).all()
        newest = TemplateCache().get(s.connection(), "rebooking")
        per_type = s.execute(select(Agent.agent_type, AgentTemplate.version)
                             .join(AgentTemplate, AgentTemplate.agent_id == Agent.id)).all()
    assert sorted(versions) == [1, 2]
    assert (newest.version, newest.initial_message) == (2, load_templates()["rebooking"].initial_message)
    assert sorted(t for t, _ in per_type).count("birthday_wishes") == 1, "unchanged templates get no new version"
