"""Creating conversations for trials and benchmarks (the checklist's test_agent_manual.py)."""
from __future__ import annotations

import random

from sqlalchemy import func, select

from core import audit, rollups
from core.auth import Actor, Permission
from core.errors import UserInputError
from core.inputs import known_shops
from core.models import AGENT_TYPES, AgentInstance, Appointment, Client, Conversation, utcnow
from core.services.guard import require
from core.templates import load_templates
from core.uow import UnitOfWork

MAX_ENQUEUE = 1_000_000


def enqueue_conversations(*, actor: Actor, count: int, uow: UnitOfWork, agent_type: str | None = None,
                          shop_id: int | None = None, rng: random.Random | None = None,
                          action: str | None = "conversations.enqueue") -> list[int]:
    """Create COUNT pending conversations for real clients of active instances (optionally one type or shop).

    ACTION names the audit record; a repeating trial (demo traffic) is audited once, when it starts
    (action None for the later batches), so it does not bury the controls in the audit log.
    """
    if not 1 <= count <= MAX_ENQUEUE:
        raise UserInputError(f"--count must be between 1 and {MAX_ENQUEUE:,}.")
    if agent_type is not None and agent_type not in AGENT_TYPES:
        raise UserInputError(f"Unknown agent type {agent_type!r}; known types: {', '.join(AGENT_TYPES)}.")
    rng = rng or random.Random()
    with uow:
        require(uow, actor, Permission.CONTROL_SYSTEM, action="conversations.enqueue", target=f"{count} conversations")
        q = select(AgentInstance).where(AgentInstance.status == "active")
        if agent_type:
            q = q.where(AgentInstance.agent_type == agent_type)
        if shop_id is not None:
            known_shops(uow.session, [shop_id])  # "no shop 999", not "no active instance"
            q = q.where(AgentInstance.shop_id == shop_id)
        instances = list(uow.session.scalars(q))
        if not instances:
            raise UserInputError("No active agent instance matches; seed data first or widen --agent-type/--shop.")
        clients = _clients_by_shop(uow, {i.shop_id for i in instances})
        channels = {t: spec.channel for t, spec in load_templates().items()}
        now, convs = utcnow(), []
        for _ in range(count):
            inst = rng.choice(instances)
            client_id, appt_id = rng.choice(clients[inst.shop_id])
            convs.append(Conversation(agent_instance_id=inst.id, shop_id=inst.shop_id, client_id=client_id,
                                      appointment_id=appt_id, agent_type=inst.agent_type,
                                      channel=channels[inst.agent_type], status="pending", created_at=now))
        uow.session.add_all(convs)
        uow.session.flush()
        rollups.record_created(uow.session, convs)
        if action:
            audit.append(uow.session, actor=actor, action=action, target=f"{count} conversations",
                         after={"count": count, "agent_type": agent_type, "shop_id": shop_id})
        uow.commit()
        return [c.id for c in convs]


def _clients_by_shop(uow: UnitOfWork, shop_ids: set[int]) -> dict[int, list[tuple[int, int | None]]]:
    latest = (select(Appointment.client_id, func.max(Appointment.id).label("appt_id"))
              .group_by(Appointment.client_id).subquery())
    rows = uow.session.execute(
        select(Client.shop_id, Client.id, latest.c.appt_id).outerjoin(latest, latest.c.client_id == Client.id)
        .where(Client.shop_id.in_(shop_ids)))
    out: dict[int, list[tuple[int, int | None]]] = {}
    for shop, client, appt in rows:
        out.setdefault(shop, []).append((client, appt))
    missing = shop_ids - set(out)
    if missing:
        raise UserInputError(f"Shops {', '.join(map(str, sorted(missing)))} have no clients to talk to.")
    return out
