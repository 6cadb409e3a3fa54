"""Generate shops, clients, appointments, instances, and conversations with transcripts."""
from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from core.llm import cost_usd
from core.models import AGENT_TYPES
from core.seed import content, shape
from core.seed.messages import ClientFacts, first_message
from core.templates import load_templates

CONV_COLUMNS = ["id", "agent_instance_id", "shop_id", "client_id", "appointment_id", "agent_type", "channel",
                "status", "created_at", "started_at", "completed_at", "response_time_ms", "prompt_tokens",
                "completion_tokens", "cost_usd", "attempts", "error", "provider"]
MSG_COLUMNS = ["id", "conversation_id", "role", "content", "created_at", "prompt_tokens", "completion_tokens",
               "latency_ms", "idempotency_key", "conversation_created_at"]
# Cost of gpt-4o-mini per token, the default model (USD).


# What a shop sets up for an agent: the custom agent's note (without it, its message would stop after the colon)
# and its holiday hours.
INSTANCE_CONFIG = {"custom": {"custom_message": "We're open late on Thursdays now, until 9 PM."},
                   "holiday_greetings": {"holiday_hours": "Dec 24 9 AM-2 PM, closed Dec 25"}}
FORCED_STATUSES = ("pending", "waiting_response", "completed", "failed", "opted_out")


@dataclass(frozen=True)
class Plan:
    shops: int
    clients_per_shop: int
    conversations: int
    days: int
    story: bool = False  # a slow hour and a model outage in the past, so every panel has something to show
    stops_honoured: bool = True  # a STOP opts its client out (see conversations); a load shape keeps them as replies


PLANS = {
    "minimal": Plan(shops=2, clients_per_shop=12, conversations=60, days=2),
    "demo": Plan(shops=8, clients_per_shop=250, conversations=4000, days=14, story=True),
    "load": Plan(shops=40, clients_per_shop=250, conversations=1_000_000, days=30, stops_honoured=False),
}


def host_rows(rng: random.Random, plan: Plan, now: datetime, first_shop_id: int, first_client_id: int
              ) -> dict[str, list[dict[str, Any]]]:
    """Enterprises, shops, barbers, clients and one appointment per client."""
    shops, barbers, clients, appts = [], [], [], []
    for i in range(plan.shops):
        shop_id = first_shop_id + i
        shops.append({"id": shop_id, "name": content.shop_name(rng, shop_id), "enterprise_id": 1 + i % 2,
                      "timezone": "America/New_York", "phone": f"+1555{shop_id:07d}", "created_at": now - timedelta(days=400)})
        for b in range(3):
            barbers.append({"id": shop_id * 10 + b, "shop_id": shop_id, "name": content.person(rng)[0]})
        for c in range(plan.clients_per_shop):
            cid = first_client_id + i * plan.clients_per_shop + c
            first, last = content.person(rng)
            clients.append({"id": cid, "shop_id": shop_id, "first_name": first, "last_name": last,
                            "phone": f"+1555{cid:07d}", "email": f"{first.lower()}.{last.lower()}{cid}@example.com",
                            "birthday": date(1970 + rng.randrange(35), 1 + rng.randrange(12), 1 + rng.randrange(28)),
                            "opted_out": rng.random() < 0.02, "created_at": now - timedelta(days=rng.randrange(30, 700))})
            appts.append({"id": cid, "shop_id": shop_id, "client_id": cid, "barber_id": shop_id * 10 + rng.randrange(3),
                          "service": rng.choice(content.SERVICES), "status": "booked", "price_usd": 35,
                          "starts_at": (now + timedelta(days=rng.randrange(-40, 14), hours=rng.randrange(8)))
                          .replace(minute=0, second=0, microsecond=0)})
    return {"shops": shops, "barbers": barbers, "clients": clients, "appointments": appts}


def _status_for(rng: random.Random, age: timedelta) -> str:
    if age < shape.PENDING_AGE:
        return "pending"
    roll = rng.random()
    if roll < shape.FAILED_SHARE:
        return "failed"
    if roll < shape.FAILED_SHARE + shape.OPTED_OUT_SHARE:
        return "opted_out"
    if age < shape.WAITING_AGE and roll < shape.FAILED_SHARE + shape.OPTED_OUT_SHARE + shape.WAITING_SHARE:
        return "waiting_response"
    return "completed"


def conversations(rng: random.Random, *, plan: Plan, count: int, now: datetime, instances: list[dict[str, Any]],
                  clients_by_shop: dict[int, list[dict[str, Any]]], facts: Mapping[int, ClientFacts],
                  first_conv_id: int, first_msg_id: int,
                  stopped: dict[int, datetime] | None = None) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Yield (conversation, messages) pairs spread over the last plan.days days, oldest first (FACTS:
    core.seed.messages). With STOPPED (client id → when they replied STOP), filled in as the history goes, a client
    opted out before the history, or since their STOP, gets no message, as the worker ends such a conversation;
    without it (a load shape, many conversations per client) STOP replies change nothing after them."""
    specs = load_templates()
    span = plan.days * 86400
    msg_id = first_msg_id
    story = Story.at(now) if plan.story else None
    honour = stopped is not None
    stopped = stopped if stopped is not None else {}
    if honour:
        stopped.update({c["id"]: datetime.min.replace(tzinfo=now.tzinfo) for clients in clients_by_shop.values()
                        for c in clients if c["opted_out"]})
    ages = [rng.random() * span for _ in range(count)]
    if honour:  # a client's STOP is met before their later conversations: oldest first (ids grow with time)
        ages.sort(reverse=True)
    first_forced = max(0, count - len(FORCED_STATUSES))
    for n, age in enumerate(ages):
        inst = instances[rng.randrange(len(instances))]
        client = rng.choice(clients_by_shop[inst["shop_id"]])
        created = now - timedelta(seconds=age)
        # The newest few cover every status a person filters by (in any recent window), whatever the random draw,
        # each for a client who may still be messaged.
        forced = n >= first_forced
        status = FORCED_STATUSES[n - first_forced] if forced else _status_for(rng, now - created)
        if forced and client["id"] in stopped:
            client = rng.choice([c for c in clients_by_shop[inst["shop_id"]] if c["id"] not in stopped] or [client])
        if client["id"] in stopped and created >= stopped[client["id"]] and status != "pending":
            conv, msgs = _held_back(first_conv_id + n, inst, client["id"], created, specs[inst["agent_type"]])
        else:
            conv, msgs = _one(rng, first_conv_id + n, inst, (client["id"], facts[client["id"]]), created, status,
                              specs[inst["agent_type"]])
            if story:
                story.tell(rng, conv, msgs)
            if honour and conv["status"] == "opted_out" and msgs:  # their STOP: nothing more is sent to them
                at = msgs[-1]["created_at"]
                stopped[client["id"]] = min(stopped.get(client["id"], at), at)
        for m in msgs:
            m["id"], msg_id = msg_id, msg_id + 1
        yield conv, msgs


def _held_back(conv_id: int, inst: dict[str, Any], client_id: int, created: datetime,
               spec: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A conversation for a client who had opted out: ended opted_out at its claim, nothing sent (the worker's
    check before it calls the model)."""
    started = created + timedelta(seconds=shape.START_DELAY_S[0])
    return {"id": conv_id, "agent_instance_id": inst["id"], "shop_id": inst["shop_id"], "client_id": client_id,
            "appointment_id": client_id, "agent_type": inst["agent_type"], "channel": spec.channel,
            "status": "opted_out", "created_at": created, "started_at": started, "completed_at": started,
            "response_time_ms": None, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0, "attempts": 1,
            "error": None, "provider": None}, []


def _one(rng: random.Random, conv_id: int, inst: dict[str, Any], client: tuple[int, ClientFacts], created: datetime,
         status: str, spec: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    client_id, facts = client
    conv = {"id": conv_id, "agent_instance_id": inst["id"], "shop_id": inst["shop_id"], "client_id": client_id,
            "appointment_id": client_id, "agent_type": inst["agent_type"], "channel": spec.channel, "status": status,
            "created_at": created, "started_at": None, "completed_at": None, "response_time_ms": None,
            "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0, "attempts": 0, "error": None, "provider": None}
    if status == "pending":
        return conv, []
    rt = content.response_ms(rng)
    started = created + timedelta(seconds=rng.uniform(*shape.START_DELAY_S))
    pt, ct = rng.randrange(*shape.PROMPT_TOKENS), rng.randrange(*shape.COMPLETION_TOKENS)
    conv.update(started_at=started, attempts=1, provider="openai", prompt_tokens=pt, completion_tokens=ct,
                cost_usd=cost_usd("gpt-4o-mini", prompt_tokens=pt, completion_tokens=ct))
    if status == "failed":
        conv.update(error=rng.choice(content.ERRORS), completed_at=started + timedelta(seconds=shape.FAILED_AFTER_S),
                    attempts=3, prompt_tokens=0, completion_tokens=0, cost_usd=0)
        return conv, []
    sent = started + timedelta(milliseconds=rt)
    conv.update(response_time_ms=rt, completed_at=sent if status != "waiting_response" else None)
    msgs = [{"conversation_id": conv_id, "role": "agent", "content": first_message(spec, facts, sent, inst["config"]),
             "created_at": sent, "prompt_tokens": pt, "completion_tokens": ct, "latency_ms": rt,
             "idempotency_key": f"conv:{conv_id}:step:0", "conversation_created_at": created}]
    if status == "opted_out":
        msgs.append(_client_msg(conv_id, "STOP", sent + timedelta(minutes=rng.randrange(*shape.STOP_AFTER_MIN)),
                                created))
        conv["completed_at"] = msgs[-1]["created_at"]
    elif status == "completed" and rng.random() < shape.CLIENT_REPLY_SHARE:
        msgs.append(_client_msg(conv_id, rng.choice(content.CLIENT_REPLIES),
                                sent + timedelta(minutes=rng.randrange(*shape.REPLY_AFTER_MIN)), created))
    return conv, msgs


@dataclass(frozen=True)
class Story:
    """The demo's incidents: replies five times slower for one hour yesterday, a model outage two days ago."""

    slow: tuple[datetime, datetime]
    outage: tuple[datetime, datetime]

    @classmethod
    def at(cls, now: datetime) -> Story:
        slow = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
        outage = now.replace(minute=20, second=0, microsecond=0) - timedelta(days=2, hours=3)
        return cls((slow, slow + timedelta(hours=1)), (outage, outage + timedelta(minutes=40)))

    def tell(self, rng: random.Random, conv: dict[str, Any], msgs: list[dict[str, Any]]) -> None:
        """Change CONV (and its MSGS) as the incident of its time would have."""
        created = conv["created_at"]
        if self.slow[0] <= created < self.slow[1] and conv["response_time_ms"]:
            later = timedelta(milliseconds=4 * conv["response_time_ms"])
            conv["response_time_ms"] *= 5
            conv["completed_at"] = conv["completed_at"] and conv["completed_at"] + later
            for m in msgs:
                m["created_at"] += later
                m["latency_ms"] = m["latency_ms"] and m["latency_ms"] * 5
        elif self.outage[0] <= created < self.outage[1] and conv["status"] != "pending" and rng.random() < 0.7:
            conv.update(status="failed", error=rng.choice(content.OUTAGE_ERRORS), response_time_ms=None,
                        completed_at=conv["started_at"] + timedelta(seconds=31), attempts=3, prompt_tokens=0,
                        completion_tokens=0, cost_usd=0)
            msgs.clear()


def _client_msg(conv_id: int, text: str, at: datetime, conversation_created: datetime) -> dict[str, Any]:
    return {"conversation_id": conv_id, "role": "client", "content": text, "created_at": at, "prompt_tokens": 0,
            "completion_tokens": 0, "latency_ms": None, "idempotency_key": None,
            "conversation_created_at": conversation_created}


def instance_rows(shop_ids: list[int], agent_ids: dict[str, int], first_id: int, rng: random.Random,
                  now: datetime) -> list[dict[str, Any]]:
    """Every agent type activated for every shop; a few paused, as in real life."""
    rows, next_id = [], first_id
    for shop_id in shop_ids:
        for agent_type in AGENT_TYPES:
            rows.append({"id": next_id, "agent_id": agent_ids[agent_type], "agent_type": agent_type, "shop_id": shop_id,
                         "status": "paused" if rng.random() < 0.05 else "active",
                         "config": dict(INSTANCE_CONFIG.get(agent_type, {})), "schedule": {},
                         "created_at": now - timedelta(days=90), "updated_at": now - timedelta(days=90)})
            next_id += 1
    return rows
