"""Readiness of the agent system: database, schema, workers, breakers, kill switch ({"ok": [...], "failing": {...}})."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, text

from core.db import read_session
from core.migrate import current_revision, head_revision
from core.models import WorkerHeartbeat, utcnow
from core.queries.health import WORKER_ALIVE_SECONDS, live_worker_conditions
from core.queries.settings import get_activation_state, with_workers_switch
from core.text import counted


@dataclass
class Readiness:
    ok: list[str] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.failing

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failing": self.failing, "info": self.info}


def check_readiness(engine: Engine) -> Readiness:
    """Every part the agent system needs, each either ok or failing with one sentence."""
    r = Readiness()
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        r.info["database_ms"] = round((time.perf_counter() - started) * 1000, 1)
        r.ok.append("database")
    except Exception as exc:  # noqa: BLE001 - any failure means: not ready
        r.failing["database"] = f"unreachable ({type(exc).__name__})"
        return r
    _check_schema(engine, r)
    if "schema" in r.failing:
        return r
    _check_workers_and_switch(engine, r)
    _describe_replica(engine, r)
    return r


def _describe_replica(engine: Engine, r: Readiness) -> None:
    """The read replica as information only: reads fall back to the primary, so a replica down is not unready."""
    from core.auth import system_actor
    from core.queries.replica import get_replica_status

    try:
        status = get_replica_status(actor=system_actor("readiness"), primary=engine)
    except Exception as exc:  # noqa: BLE001 - information only: never the reason readiness fails
        r.info["read_replica"] = {"error": type(exc).__name__}
        return
    if status.configured:  # no URL here: readiness answers without a token
        r.info["read_replica"] = {"reachable": status.reachable, "lag_seconds": status.lag_seconds,
                                  "lag_bytes": status.lag_bytes, "reading_from": status.reading_from}


def _check_schema(engine: Engine, r: Readiness) -> None:
    revision, head = current_revision(engine), head_revision()
    if revision == head:
        r.ok.append("schema")
    else:
        r.failing["schema"] = f"at revision {revision or 'none'}, code expects {head}"


def _check_workers_and_switch(engine: Engine, r: Readiness) -> None:
    now = utcnow()
    try:
        with read_session(engine) as s:
            alive = s.scalars(select(WorkerHeartbeat).where(*live_worker_conditions(now))).all()
            # The live workers' own AGENT_SYSTEM_ENABLED, not this process's: counted from the rows just read.
            state = with_workers_switch(get_activation_state(s), len(alive), sum(not w.env_enabled for w in alive))
    except Exception as exc:  # noqa: BLE001
        r.ok.remove("schema")  # the revision matched, but the tables themselves are gone (a cleanup): not ok
        r.failing["schema"] = f"agent tables unreadable ({type(exc).__name__}); run `python -m core db setup`"
        return
    r.info["workers_alive"] = len(alive)
    if alive:
        r.ok.append("workers")
    else:
        r.failing["workers"] = f"no worker heartbeat in the last {WORKER_ALIVE_SECONDS} s"
    # Counts, not worker ids: readiness answers without a token, and an id carries a host name and a pid
    # (the console's Agent health and `python -m core status` name the workers to those who may see them).
    r.info["breakers"] = dict(Counter(b.breaker_state for b in alive))
    opened = r.info["breakers"].get("open", 0)
    if opened:
        r.failing["breakers"] = f"open on {opened} of {counted(len(alive), 'live worker')}: model calls are deferred"
    else:
        r.ok.append("breakers")
    r.info["kill_switch"] = "engaged" if not state.running else "released"
    r.info["mode"] = state.mode
    r.info["settings_version"] = state.version
