"""`python -m core alerts run`: evaluate every ALERT_EVAL_SECONDS under the lease, act on AUTO_ROLLBACK, and send
the outbox on a thread of its own so a slow contact point never delays the next evaluation."""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from sqlalchemy import Engine, select
from sqlalchemy.exc import DatabaseError

from core.alerts.delivery import deliver_pending
from core.alerts.evaluator import CycleResult, evaluate
from core.auth import Actor, system_actor
from core.config import Settings, get_settings
from core.db import read_session
from core.errors import describe_database_error, first_line
from core.models import AlertRule, AlertState
from core.uow import UnitOfWork

log = logging.getLogger(__name__)


def evaluator_id() -> str:
    """host:pid:random, unique per evaluator process."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def auto_rollbacks(engine: Engine, result: CycleResult, settings: Settings) -> list[str]:
    """With AUTO_ROLLBACK=true, start the immediate rollback for each rollback-trigger alert that began firing in
    RESULT's cycle (the rollback service audits it, the alert's id in its reason); returns what was done."""
    fired = [alert_id for alert_id, _before, to in result.transitions if to == "firing"]
    if not settings.auto_rollback or not fired:
        return []
    from core.services.rollbacks import start_immediate_rollback

    with read_session(engine) as s:
        rows = s.execute(select(AlertState.id, AlertRule.key).join(AlertRule, AlertRule.id == AlertState.rule_id)
                         .where(AlertState.id.in_(fired), AlertRule.rollback_trigger.is_(True))).all()
    actor: Actor = system_actor("alerts", name="alerts:auto-rollback")
    done = []
    for alert_id, key in rows:
        run = start_immediate_rollback(actor=actor, reason=f"AUTO_ROLLBACK: alert #{alert_id} ({key}) is firing",
                                       uow=UnitOfWork(engine))
        done.append(f"alert #{alert_id} ({key}): immediate rollback run {run.id} ({run.state})")
    return done


def run_cycle(engine: Engine, *, owner: str, settings: Settings | None = None, deliver: bool = True) -> CycleResult:
    """Evaluate once under the lease, run any automatic rollback, and (DELIVER) send the outbox now."""
    s = settings or get_settings()
    result = evaluate(engine, owner=owner, settings=s)
    if result.evaluated:
        for line in auto_rollbacks(engine, result, s):
            log.warning("auto rollback: %s", line)
    if deliver:
        deliver_pending(engine, owner=owner, settings=s)
    return result


class Sender(threading.Thread):
    """Sends the outbox whenever woken (after each cycle); retries and backoff happen here, off the evaluation path."""

    def __init__(self, engine: Engine, owner: str, settings: Settings) -> None:
        super().__init__(name="alert-sender", daemon=True)
        self.engine, self.owner, self.settings = engine, owner, settings
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.said: str | None = None  # the last problem logged, so that a lasting one is said once

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(timeout=self.settings.alert_eval_seconds)
            self.wake.clear()
            try:
                deliver_pending(self.engine, owner=self.owner, settings=self.settings)
                self.said = None
            except Exception as exc:  # noqa: BLE001 - a database blip: the rows stay pending for the next round
                # One sentence, and only when it changes: the raw error (its SQL included) was logged every 15 s.
                said = describe_database_error(exc) if isinstance(exc, DatabaseError) else first_line(exc)
                if said != self.said:
                    log.warning("alert sender: %s; the notifications stay queued", said)
                self.said = said

