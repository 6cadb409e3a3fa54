"""`python -m core seed`: write a plan's data, keep the rollups consistent, report the rate."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from core import audit, rollups
from core.auth import Actor, Permission
from core.config import get_settings
from core.errors import UserInputError
from core.models import Base, Client, Enterprise, utcnow
from core.partitions import ensure_partitions
from core.seed import bulk, generate, messages, sql_load, story
from core.seed.catalog import ensure_catalog
from core.services.guard import require
from core.uow import UnitOfWork

DEMO_USERS = [  # (user name, display name, role, shops): demo sign-ins, created only in development
    ("po", "Priya Owens", "product_owner", ()), ("support", "Sam Ortiz", "support", (1, 2)),
    ("engineer", "Erin Chu", "engineer", ()), ("admin", "Ada Brooks", "admin", ()),
]
CHUNK = 20_000
# The tables a seed fills (conversations, messages and every rollup rebuilt from them): vacuumed once it is done.
# Every table the seed fills: one left without statistics (agent_instances, on a server without autovacuum) gave
# the planner a guess of 2 rows where there were 360.
WRITTEN = ("agent_conversations", "agent_messages", "agent_metrics", "agent_response", "agent_instances", "agents",
           "shops", "barbers", "clients", "appointments", "enterprises")


def demo_password(username: str) -> str:
    """The demo sign-in password of USERNAME (development only)."""
    return f"{username}-demo-pass"


@dataclass
class SeedReport:
    shops: int
    clients: int
    conversations: int
    messages: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return (self.conversations + self.messages) / self.seconds if self.seconds else 0.0


def seed(*, actor: Actor, engine: Engine, size: str, conversations: int | None = None, days: int | None = None,
         progress: Callable[[str], None] = lambda _m: None, rng_seed: int = 7) -> SeedReport:
    """Write the SIZE plan (minimal | demo | load), optionally with another conversation count and span."""
    if size not in generate.PLANS:
        raise UserInputError(f"--test-data must be one of {', '.join(generate.PLANS)}.")
    base = generate.PLANS[size]
    plan = generate.Plan(base.shops, base.clients_per_shop, conversations if conversations is not None else base.conversations,
                         days or base.days, story=base.story, stops_honoured=base.stops_honoured)
    if plan.conversations < 0 or plan.days < 1:
        raise UserInputError("--conversations must be 0 or more and --days at least 1.")
    if get_settings().environment == "production":  # made-up shops, clients and conversations among real ones
        raise UserInputError("Test data is for development and staging; nothing was written to production.")
    with UnitOfWork(engine) as uow:
        require(uow, actor, Permission.MANAGE_USERS, action="seed", target=size)
    started, rng, now = time.perf_counter(), random.Random(rng_seed), utcnow()
    instances, clients_by_shop, n_clients = _write_host(engine, plan, rng, now)
    progress(f"host data: {plan.shops} shops, {n_clients} clients, {len(instances)} agent instances")
    n_conv, n_msg = _write_conversations(engine, plan, rng, now, instances, clients_by_shop, progress)
    if plan.story:
        story.write_past_incident(engine, generate.Story.at(now), shops=sorted(clients_by_shop))
    progress("rolling up")
    with UnitOfWork(engine) as uow:
        rollups.rebuild(uow.session, since=now - timedelta(days=plan.days + 1))
        audit.append(uow.session, actor=actor, action="seed", target=size,
                     after={"conversations": n_conv, "messages": n_msg, "days": plan.days})
        uow.commit()
    progress("vacuuming")
    bulk.vacuum_analyze(engine, [t for t in Base.metadata.tables if t.startswith(WRITTEN)])
    return SeedReport(plan.shops, n_clients, n_conv, n_msg, time.perf_counter() - started)


def _write_host(engine: Engine, plan: generate.Plan, rng: random.Random, now) -> tuple[list[dict], dict[int, list], int]:
    with UnitOfWork(engine) as uow:
        conn = uow.session.connection()
        agent_ids = ensure_catalog(uow.session)
        if conn.execute(select(Enterprise.id).limit(1)).first() is None:
            bulk.copy_rows(conn, "enterprises", ["id", "name"], [{"id": 1, "name": "Northeast Barber Group"},
                                                                 {"id": 2, "name": "Sunbelt Grooming Co."}])
        first_shop = bulk.next_id(conn, "shops")
        host = generate.host_rows(rng, plan, now, first_shop, bulk.next_id(conn, "clients"))
        for table, rows in host.items():
            if rows:
                bulk.copy_rows(conn, table, list(rows[0]), rows)
        inst = generate.instance_rows([s["id"] for s in host["shops"]], agent_ids, bulk.next_id(conn, "agent_instances"), rng, now)
        bulk.copy_rows(conn, "agent_instances", list(inst[0]), inst)
        for table in ("shops", "clients", "appointments", "agent_instances", "enterprises", "barbers"):
            bulk.reset_sequence(conn, table)
        uow.commit()
    clients_by_shop: dict[int, list] = {}
    for c in host["clients"]:
        clients_by_shop.setdefault(c["shop_id"], []).append(c)
    return inst, clients_by_shop, len(host["clients"])


HONOURED_PER_CLIENT = 4


def _write_conversations(engine: Engine, plan: generate.Plan, rng: random.Random, now, instances: list[dict],
                         clients_by_shop: dict[int, list], progress: Callable[[str], None]) -> tuple[int, int]:
    with engine.begin() as conn:  # each month's rows go to their own partition (PostgreSQL), not the DEFAULT one
        ensure_partitions(conn, now, since=now - timedelta(days=plan.days + 1))
    with engine.connect() as probe:
        first_conv, first_msg = bulk.next_id(probe, "agent_conversations"), bulk.next_id(probe, "agent_messages")
    if engine.dialect.name == "postgresql" and not plan.story and plan.conversations >= sql_load.IN_DATABASE_FROM:
        n_conv, n_msg = sql_load.write(engine, count=plan.conversations, days=plan.days, now=now, instances=instances,
                                       clients_by_shop=clients_by_shop, first_conv_id=first_conv, progress=progress)
        with engine.begin() as conn:
            bulk.reset_sequence(conn, "agent_conversations")
        return n_conv, n_msg
    with engine.connect() as conn:
        facts = messages.client_facts(conn)
    # A realistic history honours each STOP (the client is opted out, nothing more is sent); a load shape, with
    # more conversations per client than HONOURED_PER_CLIENT, would have almost every client opted out, and the
    # figures it is for (tests of partial hours, benchmarks) nothing left to measure: its STOPs change nothing.
    clients = plan.shops * plan.clients_per_shop
    honoured = plan.stops_honoured and plan.conversations <= HONOURED_PER_CLIENT * clients
    stopped: dict[int, datetime] | None = {} if honoured else None
    stream = generate.conversations(rng, plan=plan, count=plan.conversations, now=now, instances=instances,
                                    clients_by_shop=clients_by_shop, facts=facts, first_conv_id=first_conv,
                                    first_msg_id=first_msg, stopped=stopped)
    n_conv = n_msg = 0
    started = time.perf_counter()
    while True:
        convs, msgs = [], []
        for conv, m in stream:
            convs.append(conv)
            msgs.extend(m)
            if len(convs) >= CHUNK:
                break
        if not convs:
            break
        with engine.begin() as conn:
            bulk.copy_rows(conn, "agent_conversations", generate.CONV_COLUMNS, convs)
            bulk.copy_rows(conn, "agent_messages", generate.MSG_COLUMNS, msgs)
        n_conv, n_msg = n_conv + len(convs), n_msg + len(msgs)
        rate = (n_conv + n_msg) / max(time.perf_counter() - started, 1e-9)
        progress(f"conversations {n_conv:,}/{plan.conversations:,}, messages {n_msg:,} ({rate:,.0f} rows/s)")
    with engine.begin() as conn:
        bulk.reset_sequence(conn, "agent_conversations")
        bulk.reset_sequence(conn, "agent_messages")
        if stopped:  # a client who replied STOP is opted out: the workers send them nothing more
            conn.execute(update(Client).where(Client.id.in_(sorted(stopped))).values(opted_out=True))
    return n_conv, n_msg


def seed_demo_users(*, actor: Actor, engine: Engine) -> list[tuple[str, str, str]]:
    """Create the demo sign-ins (development only); returns (user, role, password) for those created."""
    from core.models import User
    from core.services.users import add_user

    if get_settings().environment != "development":
        return []
    created = []
    with engine.connect() as conn:
        existing = set(conn.execute(select(User.username)).scalars())
    for username, name, role, shops in DEMO_USERS:
        if username in existing:
            continue
        add_user(actor=actor, username=username, password=demo_password(username), role=role, uow=UnitOfWork(engine),
                 name=name, shops=shops, is_demo=True)
        created.append((username, role, demo_password(username)))
    return created

