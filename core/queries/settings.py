"""The kill switch and activation scope as the workers and every surface see it."""
from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.auth import Actor
from core.config import get_settings
from core.models import AgentSettings, Shop


def shop_in_percent(shop_id: int, percent: int) -> bool:
    """Stable choice of PERCENT % of shops: the same shops stay in as the percentage grows."""
    return zlib.crc32(f"shop:{shop_id}".encode()) % 100 < percent


@dataclass(frozen=True)
class Scope:
    """Which conversations may start, as plain sets (None: no limit). Made only by ActivationState.scope."""

    shops: frozenset[int] | None = None
    agent_types: frozenset[str] | None = None
    disabled_agent_types: frozenset[str] = frozenset()

    def allows(self, *, shop_id: int, agent_type: str) -> bool:
        """True when a conversation of AGENT_TYPE for SHOP_ID is inside this scope."""
        return ((self.shops is None or shop_id in self.shops) and agent_type not in self.disabled_agent_types
                and (self.agent_types is None or agent_type in self.agent_types))


@dataclass(frozen=True)
class ActivationState:
    """The switch as stored, plus the environment's AGENT_SYSTEM_ENABLED override."""

    version: int
    mode: str
    allowed_shops: tuple[int, ...] = ()
    allowed_agent_types: tuple[str, ...] = ()
    shop_percent: int | None = None
    disabled_agent_types: tuple[str, ...] = ()
    changed_by: str = "system"
    changed_at: datetime | None = None
    reason: str = ""
    env_enabled: bool = True

    @property
    def running(self) -> bool:
        """True when new conversations may start at all."""
        return self.env_enabled and self.mode != "off"

    def scope(self, *, shop_ids: Iterable[int] = ()) -> Scope:
        """The one scope rule, used by the worker's claim and by `allows`: what may start now.

        Limited mode allows the listed shops plus the PERCENT of SHOP_IDS that `shop_in_percent` picks (nothing
        when neither is set: limited never silently means everything), narrowed to the listed types if any.
        """
        if not self.running:
            return Scope(shops=frozenset())
        disabled = frozenset(self.disabled_agent_types)
        if self.mode == "full":
            return Scope(disabled_agent_types=disabled)
        shops = set(self.allowed_shops)
        if self.shop_percent is not None:
            shops |= {s for s in shop_ids if shop_in_percent(s, self.shop_percent)}
        return Scope(shops=frozenset(shops), agent_types=frozenset(self.allowed_agent_types) or None,
                     disabled_agent_types=disabled)

    def allows(self, *, shop_id: int, agent_type: str) -> bool:
        """True when a conversation of AGENT_TYPE for SHOP_ID may start now."""
        return self.scope(shop_ids=(shop_id,)).allows(shop_id=shop_id, agent_type=agent_type)

    def scope_lines(self, shop_ids: Iterable[int] | None = None) -> list[str]:
        """What may run, in words: the limited scope and the disabled types (the CLI's status, the console's banner).
        With SHOP_IDS (every shop), the shops a percentage picks are named: "12% of shops" alone said not which."""
        lines = []
        if self.mode == "limited":
            percent = ""
            if self.shop_percent is not None:
                percent = f"; plus {self.shop_percent}% of shops"
                if shop_ids is not None:
                    known = sorted(set(shop_ids))
                    picked = [s for s in known if shop_in_percent(s, self.shop_percent)]
                    percent += f" ({', '.join(map(str, picked)) or 'none'}: {len(picked)} of {len(known)})"
            lines.append(f"shops: {', '.join(map(str, self.allowed_shops)) or '-'}{percent}")
            lines.append(f"agent types: {', '.join(self.allowed_agent_types) or 'all'}")
        if self.disabled_agent_types:
            lines.append(f"disabled types: {', '.join(self.disabled_agent_types)}")
        return lines

    def as_dict(self) -> dict:
        """A JSON-friendly view (CLI, API, audit)."""
        return {"version": self.version, "mode": self.mode, "running": self.running,
                "env_enabled": self.env_enabled, "allowed_shops": list(self.allowed_shops),
                "allowed_agent_types": list(self.allowed_agent_types), "shop_percent": self.shop_percent,
                "disabled_agent_types": list(self.disabled_agent_types), "changed_by": self.changed_by,
                "changed_at": self.changed_at.isoformat() if self.changed_at else None, "reason": self.reason}


def state_of(row: AgentSettings) -> ActivationState:
    """The immutable view of a settings row."""
    return ActivationState(
        version=row.version, mode=row.mode, allowed_shops=tuple(row.allowed_shops or ()),
        allowed_agent_types=tuple(row.allowed_agent_types or ()), shop_percent=row.shop_percent,
        disabled_agent_types=tuple(row.disabled_agent_types or ()), changed_by=row.changed_by,
        changed_at=row.changed_at, reason=row.reason, env_enabled=get_settings().agent_system_enabled)


def get_activation_state(session: Session) -> ActivationState:
    """The current switch and scope (anyone may read it: it holds no client data)."""
    row = session.scalars(select(AgentSettings).where(AgentSettings.id == 1)).one()
    return state_of(row)


def workers_switched_off(session: Session) -> tuple[int, int]:
    """(live workers, how many of them run with AGENT_SYSTEM_ENABLED=false): those start nothing whatever the stored
    switch says, and only their heartbeats tell (the reader's own environment may say otherwise)."""
    from core.models import WorkerHeartbeat, utcnow
    from core.queries.health import live_worker_conditions

    live, off = session.execute(select(func.count(), func.count().filter(WorkerHeartbeat.env_enabled.is_(False)))
                                .where(*live_worker_conditions(utcnow()))).one()
    return int(live), int(off)


def with_workers_switch(state: ActivationState, live: int, off: int) -> ActivationState:
    """STATE with AGENT_SYSTEM_ENABLED as the LIVE workers report it (OFF of them false); this process's own while
    none is live: the reader's environment may differ from theirs."""
    return replace(state, env_enabled=off < live) if live else state


def as_workers_see_it(session: Session) -> tuple[ActivationState, int, int]:
    """The switch as the live workers obey it (see with_workers_switch), with (live workers, how many are off)."""
    live, off = workers_switched_off(session)
    return with_workers_switch(get_activation_state(session), live, off), live, off


def workers_switch_line(live: int, off: int) -> str | None:
    """The sentence for live workers whose own AGENT_SYSTEM_ENABLED is false, or None when there are none."""
    if not off:
        return None
    if off == live:
        return f"every live worker ({live}) runs with AGENT_SYSTEM_ENABLED=false: nothing starts, whatever is set here"
    return f"{off} of {live} live workers run with AGENT_SYSTEM_ENABLED=false: those start nothing"


def held_back(session: Session, *, actor: Actor, conversation_ids: Iterable[int]) -> tuple[int, str]:
    """How many of these conversations cannot start now, and why and until when, in words (for whoever may queue
    conversations)."""
    from core.auth import Permission
    from core.models import Conversation
    from core.queries.health import WORKER_ALIVE_SECONDS
    from core.queries.scope import require_read

    require_read(actor, Permission.CONTROL_SYSTEM)
    state, live, _ = as_workers_see_it(session)
    ids = list(conversation_ids)
    rows = session.execute(select(Conversation.shop_id, Conversation.agent_type)
                           .where(Conversation.id.in_(ids))).all() if ids else []
    until = "; they start once the switch allows them"
    if state.mode != "off" and not state.env_enabled:
        return len(rows), (f"every live worker ({live}) runs with AGENT_SYSTEM_ENABLED=false" if live
                           else "AGENT_SYSTEM_ENABLED=false in this environment") + until
    scope = state.scope(shop_ids=percent_candidates(session, state))
    waiting = sum(not scope.allows(shop_id=s, agent_type=t) for s, t in rows)
    if not waiting and rows and not live:  # the switch lets them start, but nothing is there to start them
        return len(rows), (f"no worker is alive (none has sent a heartbeat in the last {WORKER_ALIVE_SECONDS} s); "
                           "they start once one runs (python -m core worker)")
    why = "the agent system is off" if not state.running else f"the switch is in {state.mode} mode"
    if state.running and state.disabled_agent_types:
        why += f" with {', '.join(state.disabled_agent_types)} disabled"
    return waiting, why + until


def percent_candidates(session: Session, state: ActivationState) -> list[int]:
    """Every shop's id when STATE picks a percentage of shops (what the pick is made among), else none."""
    return list(session.scalars(select(Shop.id).order_by(Shop.id))) if state.shop_percent is not None else []
