"""Cached reads for the pages. Arguments are primitives and always include the user's scope."""
from __future__ import annotations

import time
from typing import Any

import streamlit as st
from sqlalchemy.orm import Session

from core.auth import Actor, Role
from core.queries import health, metrics
from core.queries.replica import ReplicaStatus, get_replica_status
from core.read_routing import route_of, run_read

TTL_SECONDS = 10
REPLICA_TTL_SECONDS = 5


def scope_args(actor: Actor) -> tuple[str, tuple[int, ...] | None]:
    """The cache key part that keeps one user's data from reaching another."""
    return actor.role.value, None if actor.shop_ids is None else tuple(sorted(actor.shop_ids))


def _actor(role: str, shops: tuple[int, ...] | None) -> Actor:
    return Actor(username="console-read", role=Role(role), shop_ids=None if shops is None else frozenset(shops),
                 source="console")


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def health_figures(role: str, shops: tuple[int, ...] | None, window_hours: int) -> dict[str, Any]:
    """Everything the Agent Health page shows for one scope and window, and how long the reads took."""
    actor, started = _actor(role, shops), time.perf_counter()
    # Figures a moment old are fine: the read replica when there is one (the primary if it fails midway).
    figures = run_read(lambda s: _read_health(s, actor, window_hours))
    figures["read_ms"] = (time.perf_counter() - started) * 1000
    figures["read_at"] = time.time()
    return figures


def _read_health(s: Session, actor: Actor, window_hours: int) -> dict[str, Any]:
    summary = metrics.get_summary(s, actor=actor, window_hours=window_hours)
    workers = health.list_workers(s, actor=actor)
    return {
        "summary": summary,
        "criteria": health.evaluate_criteria(s, actor=actor, summary=summary, workers=workers),
        "series": metrics.get_timeseries(s, actor=actor, window_hours=window_hours),
        "by_type": metrics.get_breakdown(s, actor=actor, window_hours=window_hours, by="agent_type"),
        "by_shop": metrics.get_breakdown(s, actor=actor, window_hours=window_hours, by="shop"),
        "workers": workers,
        "probes": health.probe_history(s, actor=actor, window_hours=window_hours),
        "route": route_of(s),
    }


@st.cache_data(ttl=REPLICA_TTL_SECONDS, show_spinner=False)
def replica_status(role: str, shops: tuple[int, ...] | None) -> ReplicaStatus:
    """The read replica's state and lag as this scope may see it (a replica found down is not retried here)."""
    return get_replica_status(actor=_actor(role, shops))
