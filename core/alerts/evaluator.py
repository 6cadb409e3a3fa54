"""The evaluator: every rule against its metric, each alert through normal → pending → firing → resolved, with
history. Several evaluators may run; a lease row (PostgreSQL and SQLite alike) lets exactly one evaluate at a time.

State and the notifications it calls for are written in one transaction (the outbox, core.alerts.delivery):
sending happens afterwards, so a slow or unreachable contact point never holds up evaluation."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.alerts.metrics import METRICS, Series
from core.alerts.rules import OPS, alert_labels, resolve
from core.config import Settings, get_settings
from core.db import snapshot_session, write_bind
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
        # Reads first, from one snapshot (a probe fold between two statements misread the rollups): nothing is
        # written until they are done.
        with snapshot_session(session) as snapshot:
            reads = _read_all(snapshot, rules, now, s, result)
        states = {(a.rule_id, a.series): a for a in session.scalars(select(AlertState))}
        values: dict[int, float | None] = {}
        for rule in rules:
            if rule.id in reads:
                _apply(session, rule, reads[rule.id], states, values, now, result)
        session.flush()
        _store_values(session, values, now)
        result.rules = len(rules)
        result.queued = delivery.queue_notifications(session, now=now, settings=s)
        session.commit()
    return result


Read = tuple[list[Series], float, float]  # the series, the threshold, the pending period


def _read_all(session: Session, rules: list[AlertRule], now: datetime, s: Settings,
              result: CycleResult) -> dict[int, Read]:
    """Every rule's metric; rules on the same metric and scope share one read. A metric that cannot be read is
    reported and skipped, the others go on (nothing has been written yet, so a rollback loses nothing)."""
    cache: dict[tuple, list[Series]] = {}
    out: dict[int, Read] = {}
    for rule in rules:
        key, r = rule.key, resolve(rule, s)
        try:
            if (rule.metric, r.scope) not in cache:
                cache[(rule.metric, r.scope)] = METRICS[rule.metric].read(session, r.scope, now)
        except Exception as exc:  # noqa: BLE001 - one broken rule must not stop the cycle; it is reported
            session.rollback()
            result.errors.append(f"{key}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            log.warning("alert rule %s could not be evaluated: %s", key, exc)
            continue
        out[rule.id] = (cache[(rule.metric, r.scope)], r.threshold, r.pending_seconds)
    return out


def _apply(session: Session, rule: AlertRule, read: Read, states: dict, values: dict[int, float | None],
           now: datetime, result: CycleResult) -> None:
    series, threshold, pending = read
    for one in series:
        key, labels = series_key(one.labels), alert_labels(rule, one.labels)
        alert = states.get((rule.id, key))
        if alert is None:
            alert = AlertState(rule_id=rule.id, series=key, labels=labels, state="normal", value=one.value,
                               evaluated_at=now)
            session.add(alert)
            session.flush()
            states[(rule.id, key)] = alert
        elif alert.labels != labels:
            alert.labels = labels
        values[alert.id] = one.value
        set_committed_value(alert, "value", one.value)  # written below, with every alert's, in one statement
        step(session, alert, rule, value=one.value, threshold=threshold, pending_seconds=pending, now=now,
             result=result)


def _store_values(session: Session, values: dict[int, float | None], now: datetime) -> None:
    """Every alert's latest value and evaluation time in one UPDATE (not one per alert and cycle)."""
    if values:
        session.execute(update(AlertState).where(AlertState.id.in_(list(values)))
                        .values(value=case(values, value=AlertState.id, else_=AlertState.value), evaluated_at=now)
                        .execution_options(synchronize_session=False))


def _condition(rule: AlertRule, value: float | None, threshold: float) -> bool | None:
    """True/False, or None when there is no data and the rule says to change nothing."""
    if value is None:
        return {"ok": False, "alerting": True, "keep": None}[rule.no_data]
    return OPS[rule.op](value, threshold)


def step(session: Session, alert: AlertState, rule: AlertRule, *, value: float | None, threshold: float,
         pending_seconds: float, now: datetime, result: CycleResult) -> None:
    """Move ALERT on by one evaluation: the state machine of the issue, with keep-firing and no-data handling."""
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
