"""The evaluator: every rule against its metric, each alert through normal → pending → firing → resolved, with
history. Several evaluators may run; a lease row (PostgreSQL and SQLite alike) lets exactly one evaluate at a time.

State and the notifications it calls for are written in one transaction (the outbox, core.alerts.delivery):
sending happens afterwards, so a slow or unreachable contact point never holds up evaluation."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.alerts.metrics import METRICS, Series
from core.alerts.rules import OPS, alert_labels, resolve
from core.config import Settings, get_settings
from core.db import write_bind
from core.models import AlertLease, AlertRule, AlertState, AlertTransition, utcnow

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    evaluated: bool  # False: another evaluator holds the lease
    rules: int = 0
    transitions: list[tuple[int, str, str]] = field(default_factory=list)  # (alert id, from, to)
    queued: int = 0  # notifications put in the outbox
    errors: list[str] = field(default_factory=list)  # rules whose metric could not be read


def acquire_lease(engine: Engine, *, owner: str, seconds: float, now: datetime | None = None) -> bool:
    """Take or renew the evaluator lease for SECONDS; True when OWNER holds it afterwards."""
    now = now or utcnow()
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with write_bind(engine).begin() as conn:
        conn.execute(dialect.insert(AlertLease).values(id=1, owner=owner, expires_at=now - timedelta(seconds=1))
                     .on_conflict_do_nothing(index_elements=["id"]))
        taken = conn.execute(update(AlertLease).where(
            AlertLease.id == 1, (AlertLease.owner == owner) | (AlertLease.expires_at < now))
            .values(owner=owner, expires_at=now + timedelta(seconds=seconds)))
        return taken.rowcount == 1


def release_lease(engine: Engine, *, owner: str) -> None:
    """Give the lease up (a one-shot run, a clean stop) so another evaluator need not wait for it to run out."""
    with write_bind(engine).begin() as conn:
        conn.execute(update(AlertLease).where(AlertLease.id == 1, AlertLease.owner == owner)
                     .values(expires_at=utcnow() - timedelta(seconds=1)))


def series_key(labels: dict[str, str]) -> str:
    """A stable name for a series' own labels ('' for a rule's only series)."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))[:300] if labels else ""


def evaluate(engine: Engine, *, owner: str, now: datetime | None = None, settings: Settings | None = None,
             lease_seconds: float | None = None) -> CycleResult:
    """One cycle, if OWNER holds (or takes) the lease: read every enabled rule's metric, move its alerts on, queue
    the notifications that calls for, commit once."""
    s, now = settings or get_settings(), now or utcnow()
    if not acquire_lease(engine, owner=owner, seconds=lease_seconds or 3 * s.alert_eval_seconds, now=now):
        return CycleResult(evaluated=False)
    from core.alerts import delivery

    result = CycleResult(evaluated=True)
    with Session(bind=write_bind(engine), expire_on_commit=False) as session:
        rules = session.scalars(select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)).all()
        states = {(a.rule_id, a.series): a for a in session.scalars(select(AlertState))}
        cache: dict[tuple, list[Series]] = {}
        for rule in rules:
            _evaluate_rule(session, rule, states, cache, now, s, result)
        result.rules = len(rules)
        session.flush()
        result.queued = delivery.queue_notifications(session, now=now, settings=s)
        session.commit()
    return result


def _read(session: Session, rule: AlertRule, cache: dict, now: datetime, s: Settings) -> tuple[list[Series], float, float]:
    r = resolve(rule, s)
    key = (rule.metric, r.scope)
    if key not in cache:  # rules on the same metric and scope share one read
        cache[key] = METRICS[rule.metric].read(session, r.scope, now)
    return cache[key], r.threshold, r.pending_seconds


def _evaluate_rule(session: Session, rule: AlertRule, states: dict, cache: dict, now: datetime, s: Settings,
                   result: CycleResult) -> None:
    try:
        with session.begin_nested():  # a metric that cannot be read leaves the other rules' work intact
            series, threshold, pending = _read(session, rule, cache, now, s)
    except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the cycle; it is reported
        result.errors.append(f"{rule.key}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        log.warning("alert rule %s could not be evaluated: %s", rule.key, exc)
        return
    for one in series:
        key = series_key(one.labels)
        alert = states.get((rule.id, key))
        if alert is None:
            alert = AlertState(rule_id=rule.id, series=key, labels=alert_labels(rule, one.labels), state="normal")
            session.add(alert)
            session.flush()
            states[(rule.id, key)] = alert
        alert.labels = alert_labels(rule, one.labels)
        step(session, alert, rule, value=one.value, threshold=threshold, pending_seconds=pending, now=now,
             result=result)


def _condition(rule: AlertRule, value: float | None, threshold: float) -> bool | None:
    """True/False, or None when there is no data and the rule says to change nothing."""
    if value is None:
        return {"ok": False, "alerting": True, "keep": None}[rule.no_data]
    return OPS[rule.op](value, threshold)


def step(session: Session, alert: AlertState, rule: AlertRule, *, value: float | None, threshold: float,
         pending_seconds: float, now: datetime, result: CycleResult) -> None:
    """Move ALERT on by one evaluation: the state machine of the issue, with keep-firing and no-data handling."""
    alert.value, alert.evaluated_at = value, now
    true = _condition(rule, value, threshold)
    if true is None:
        return
    before = alert.state
    if true:
        alert.last_true_at = now
        if before in ("normal", "resolved"):
            alert.pending_since, alert.resolved_at = now, None
            alert.acked_by = alert.acked_at = alert.ack_comment = None  # a new episode is unacknowledged
            _move(session, alert, "pending", value, now, result)
        if alert.state == "pending" and (now - alert.pending_since).total_seconds() >= pending_seconds:
            alert.firing_since = now
            _move(session, alert, "firing", value, now, result)
        return
    if before == "pending":
        alert.pending_since = None
        _move(session, alert, "normal", value, now, result)
    elif before == "firing" and (alert.last_true_at is None or
                                 (now - alert.last_true_at).total_seconds() >= rule.keep_firing_seconds):
        alert.resolved_at = now
        _move(session, alert, "resolved", value, now, result)


def _move(session: Session, alert: AlertState, to: str, value: float | None, now: datetime,
          result: CycleResult) -> None:
    session.add(AlertTransition(alert_id=alert.id, rule_id=alert.rule_id, at=now, from_state=alert.state,
                                to_state=to, value=value))
    result.transitions.append((alert.id, alert.state, to))
    alert.state = to
