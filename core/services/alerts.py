"""Alert rules, contact points, silences, acknowledgements, test notifications and mitigations: each a change of
state with its permission check, its audit record and one commit. Mitigations go through the controls and rollback
services, with the alert's id in their audit reason."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from core import audit
from core.alerts.delivery import SETTINGS_CONTACTS, deliver_pending, list_contact_points, mask_webhook, test_payload
from core.alerts.rules import DEFAULT_RULES, check_matcher_labels, parse_matchers, validate_rule
from core.auth import Actor, Permission
from core.config import get_settings
from core.errors import Conflict, NotFound, UserInputError
from core.inputs import finite_number, required_reason
from core.models import (
    CONTACT_KINDS,
    SEVERITIES,
    AlertContact,
    AlertDelivery,
    AlertRule,
    AlertSilence,
    AlertState,
    Shop,
    utcnow,
)
from core.queries.users import get_user_by_name
from core.services import controls, rollbacks
from core.services.guard import require
from core.uow import UnitOfWork

RULE_FIELDS = ("key", "name", "metric", "op", "threshold", "threshold_setting", "window_minutes", "window_setting",
               "agent_type", "shop_id", "severity", "pending_seconds", "pending_setting", "keep_firing_seconds",
               "no_data", "rollback_trigger", "labels", "enabled")
MAX_SILENCE_MINUTES = 366 * 24 * 60
MITIGATIONS = {"disable_agent_type": "Disable the agent type", "go_limited": "Go limited",
               "kill_switch": "Kill switch", "immediate_rollback": "Immediate rollback"}


def rule_dict(rule: AlertRule) -> dict[str, Any]:
    """A rule's editable fields."""
    return {f: getattr(rule, f) for f in RULE_FIELDS}


def save_rule(*, actor: Actor, spec: dict[str, Any], uow: UnitOfWork, expected_version: int | None = None) -> int:
    """Create a rule, or update the one with SPEC's key; validated (one sentence, nothing saved) and audited.

    EXPECTED_VERSION is what an editor was showing: 0 for a new rule (refused if the key is taken), else the
    version it loaded (refused if the rule has changed or gone since). None updates whatever is there (CLI)."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert_rule.save", target=str(spec.get("key", "")))
        clean = validate_rule(spec)
        if clean.get("shop_id") is not None and uow.session.get(Shop, clean["shop_id"]) is None:
            raise UserInputError(f"No shop with id {clean['shop_id']}.")  # a rule that could never match
        rule = uow.session.scalars(select(AlertRule).where(AlertRule.key == clean["key"])
                                   .with_for_update()).one_or_none()
        _check_version(rule, clean["key"], expected_version)
        before = rule_dict(rule) if rule else None
        if rule is None:
            rule = AlertRule(key=clean["key"])
            uow.session.add(rule)
        else:
            rule.version += 1
        for name in RULE_FIELDS:
            if name in clean:
                setattr(rule, name, clean[name])
        rule.updated_by, rule.updated_at = actor.username, utcnow()
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="alert_rule.update" if before else "alert_rule.create",
                     target=f"rule {rule.key}", before=before, after=rule_dict(rule))
        uow.commit()
        return rule.id


def _check_version(rule: AlertRule | None, key: str, expected: int | None) -> None:
    """Refuse a save made from an editor that showed something else than what is stored now."""
    if expected is None:
        return
    if expected == 0 and rule is not None:
        raise Conflict(f"A rule with key {key} already exists; choose it under Rule to edit it.")
    if expected and rule is None:
        raise Conflict(f"Rule {key} was removed by someone else; nothing was saved. Your values are still in the "
                       "form: choose \"(new rule)\" and enter them again to add it back.")
    if expected and rule is not None and rule.version != expected:
        by = f" by {rule.updated_by}" if rule.updated_by else ""
        raise Conflict(f"Rule {key} was changed{by} since you opened it; nothing was saved. Choose it again to see "
                       "what it is now.")


def delete_rule(*, actor: Actor, key: str, uow: UnitOfWork) -> None:
    """Remove the rule KEY with its alerts and their history (audited with what it was)."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert_rule.delete", target=f"rule {key}")
        rule = uow.session.scalars(select(AlertRule).where(AlertRule.key == key)).one_or_none()
        if rule is None:
            raise NotFound(f"No alert rule with key {key!r}.")
        before = rule_dict(rule)
        uow.session.delete(rule)
        audit.append(uow.session, actor=actor, action="alert_rule.delete", target=f"rule {key}", before=before)
        uow.commit()


def install_default_rules(*, actor: Actor, uow: UnitOfWork) -> int:
    """Add the checklist's default rules when there are no rules at all; returns how many were added."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert_rule.install_defaults", target="alert rules")
        if uow.session.scalar(select(func.count()).select_from(AlertRule)):
            return 0
        for spec in DEFAULT_RULES:
            uow.session.add(AlertRule(**validate_rule(spec), updated_by=actor.username))
        audit.append(uow.session, actor=actor, action="alert_rule.install_defaults", target="alert rules",
                     after={"rules": [r["key"] for r in DEFAULT_RULES]})
        uow.commit()
        return len(DEFAULT_RULES)


def _check_contact(name: str, kind: str, target: str, min_severity: str, matchers: list[str]) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise UserInputError("A contact point's name is 1–64 letters, digits, '_', '.' or '-' (e.g. oncall-pager).")
    if name in SETTINGS_CONTACTS:
        raise UserInputError(f"The name {name!r} belongs to the contact point given in settings; choose another.")
    if kind not in CONTACT_KINDS:
        raise UserInputError(f"The kind must be one of {', '.join(CONTACT_KINDS)} (got {kind!r}).")
    if kind == "webhook" and not target.startswith(("http://", "https://")):
        raise UserInputError("A webhook contact point needs an http:// or https:// URL.")
    if kind == "email" and "@" not in target:
        raise UserInputError("An e-mail contact point needs an address such as oncall@example.com.")
    if min_severity not in SEVERITIES:
        raise UserInputError(f"The severity must be one of {', '.join(SEVERITIES)} (got {min_severity!r}).")
    parse_matchers(matchers)


def _custom_labels(uow: UnitOfWork) -> set[str]:
    """The label names the rules add of their own (AlertRule.labels)."""
    return {name for labels in uow.session.scalars(select(AlertRule.labels)) for name in (labels or {})}


def save_contact_point(*, actor: Actor, name: str, kind: str, target: str, uow: UnitOfWork,
                       min_severity: str = "warning", matchers: list[str] | None = None,
                       group_by: list[str] | None = None, repeat_minutes: float | None = None,
                       enabled: bool = True) -> int:
    """Create or update the contact point NAME with its routing (severity, label matchers, grouping, repeat)."""
    matchers = [m.strip() for m in (matchers or []) if m.strip()]
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert_contact.save", target=f"contact {name}")
        _check_contact(name, kind, target.strip(), min_severity, matchers)
        check_matcher_labels(parse_matchers(matchers), _custom_labels(uow))
        if repeat_minutes is not None and repeat_minutes <= 0:
            raise UserInputError("The repeat interval must be a positive number of minutes.")
        row = uow.session.scalars(select(AlertContact).where(AlertContact.name == name)).one_or_none()
        before = _contact_view(row) if row else None
        row = row or AlertContact(name=name)
        row.kind, row.target, row.min_severity, row.matchers = kind, target.strip(), min_severity, matchers
        row.group_by, row.repeat_minutes, row.enabled = list(group_by or ["rule"]), repeat_minutes, enabled
        row.updated_by, row.updated_at = actor.username, utcnow()
        uow.session.add(row)
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="alert_contact.save", target=f"contact {name}",
                     before=before, after=_contact_view(row))
        uow.commit()
        return row.id


def _contact_view(row: AlertContact) -> dict[str, Any]:
    """A contact point as the audit log keeps it: a webhook URL masked."""
    target = mask_webhook(row.target) if row.kind == "webhook" else row.target
    return {"kind": row.kind, "target": target, "min_severity": row.min_severity, "matchers": list(row.matchers or []),
            "group_by": list(row.group_by or []), "repeat_minutes": row.repeat_minutes, "enabled": row.enabled}


def delete_contact_point(*, actor: Actor, name: str, uow: UnitOfWork) -> None:
    """Remove the contact point NAME (settings ones cannot be removed here)."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert_contact.delete", target=f"contact {name}")
        row = uow.session.scalars(select(AlertContact).where(AlertContact.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"No contact point named {name!r} is kept in the database.")
        before = _contact_view(row)
        uow.session.delete(row)
        audit.append(uow.session, actor=actor, action="alert_contact.delete", target=f"contact {name}", before=before)
        uow.commit()


def create_silence(*, actor: Actor, matchers: list[str] | str, minutes: float, reason: str, uow: UnitOfWork,
                   now: datetime | None = None) -> int:
    """Silence the alerts whose labels match every matcher, for MINUTES from now; returns the silence id."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert_silence.create", target="silence")
        parsed = parse_matchers(matchers)
        if not parsed:
            raise UserInputError("A silence needs at least one matcher, such as rule=error_rate.")
        check_matcher_labels(parsed, _custom_labels(uow))
        length = finite_number(minutes or 0, "A silence's minutes")
        if not 0 < length <= MAX_SILENCE_MINUTES:
            got = f"{length:,.0f}" if float(length).is_integer() else f"{length:g}"
            raise UserInputError(f"A silence lasts from 1 minute to {MAX_SILENCE_MINUTES:,} minutes (a year); "
                                 f"got {got}.")
        reason = required_reason(reason, "A reason is required for a silence.")
        start = now or utcnow()
        row = AlertSilence(matchers=[str(m) for m in parsed], starts_at=start, ends_at=start + timedelta(minutes=minutes),
                           reason=reason, created_by=actor.username, created_at=start)
        uow.session.add(row)
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="alert_silence.create", target=f"silence {row.id}",
                     reason=reason, after={"matchers": row.matchers, "ends_at": row.ends_at.isoformat()})
        uow.commit()
        return row.id


def expire_silence(*, actor: Actor, silence_id: int, uow: UnitOfWork) -> None:
    """End silence SILENCE_ID now."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert_silence.expire", target=f"silence {silence_id}")
        row = uow.session.get(AlertSilence, silence_id)
        if row is None:
            raise NotFound(f"No silence with id {silence_id}.")
        if row.expired_by is None and row.ends_at > utcnow():
            row.expired_by, row.ends_at = actor.username, utcnow()
            audit.append(uow.session, actor=actor, action="alert_silence.expire", target=f"silence {silence_id}",
                         after={"matchers": list(row.matchers or [])})
            uow.commit()


def _owner(uow: UnitOfWork, name: str) -> str:
    """NAME when it is an active console user: an alert is owned by someone who can act on it."""
    user = get_user_by_name(uow.session, name.strip())
    if user is None or user.disabled:
        raise NotFound(f"No active user named {name.strip()!r} to own the alert.")
    return user.username


def acknowledge_alert(*, actor: Actor, alert_id: int, comment: str, uow: UnitOfWork, owner: str | None = None) -> None:
    """Say who owns alert ALERT_ID (default: the actor), with a comment; its repeats stop until it fires anew."""
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert.acknowledge", target=f"alert {alert_id}")
        comment = required_reason(comment, "An acknowledgement needs a comment: what is being done about the alert.")
        alert = uow.session.get(AlertState, alert_id)
        if alert is None:
            raise NotFound(f"No alert with id {alert_id}.")
        if alert.state not in ("pending", "firing"):
            raise UserInputError(f"Alert #{alert_id} is {alert.state}; only pending or firing alerts are acknowledged.")
        alert.acked_by, alert.acked_at = _owner(uow, owner) if owner else actor.username, utcnow()
        alert.ack_comment = comment
        audit.append(uow.session, actor=actor, action="alert.acknowledge", target=f"alert {alert_id}",
                     reason=comment, after={"owner": alert.acked_by})
        uow.commit()


@dataclass(frozen=True)
class TestResult:
    contact: str
    ok: bool
    attempts: int
    error: str | None


def send_test_notification(*, actor: Actor, contact: str | None = None,
                           uow: UnitOfWork | None = None) -> list[TestResult]:
    """Send a test notification to CONTACT (default: every enabled contact point); logged, audited, and the
    result of each delivery returned (the checklist's "test error reporting and alerting")."""
    uow = uow or UnitOfWork()
    with uow:
        require(uow, actor, Permission.CHECKLIST, action="alert.test_notification", target=contact or "all contacts")
        points = [c for c in list_contact_points(uow.session) if c.enabled and (contact is None or c.name == contact)]
        if not points:
            raise UserInputError(f"No contact point named {contact!r}." if contact else
                                 "No contact point is configured: set ALERT_WEBHOOK_URL or ALERT_EMAIL_TO (with "
                                 "SENDGRID_API_KEY), or add one on the Alerts page.")
        rows = [AlertDelivery(contact=c.name, kind=c.kind, group_key="test", status="pending", payload=test_payload())
                for c in points]
        uow.session.add_all(rows)
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="alert.test_notification", target=contact or "all contacts",
                     after={"contacts": [c.name for c in points]})
        uow.commit()
        ids = [r.id for r in rows]
    sent = deliver_pending(uow.engine, owner=f"test:{actor.username}", ids=ids)
    return [TestResult(r.contact, r.status == "sent", r.attempts, r.error) for r in sent]


def mitigations_for(rule: AlertRule) -> list[str]:
    """The mitigations that fit RULE: disabling its agent type when it has one, going limited, the kill switch,
    and for a rollback trigger or a critical rule the immediate rollback."""
    out = ["disable_agent_type"] if rule.agent_type else []
    out += ["go_limited", "kill_switch"]
    return out + (["immediate_rollback"] if rule.rollback_trigger or rule.severity == "critical" else [])


def _rule_of_alert(uow: UnitOfWork, alert_id: int) -> AlertRule:
    with uow:
        alert = uow.session.get(AlertState, alert_id)
        if alert is None:
            raise NotFound(f"No alert with id {alert_id}.")
        rule = uow.session.get(AlertRule, alert.rule_id)
        uow.session.expunge(rule)  # read only: kept as loaded after the unit ends
        return rule


def mitigate_alert(*, actor: Actor, alert_id: int, action: str, reason: str, uow: UnitOfWork) -> str:
    """Apply mitigation ACTION for alert ALERT_ID through the controls or rollback service (which checks the
    permission and audits, with the alert's id in the reason); returns what was done, in one sentence."""
    with UnitOfWork(uow.engine) as check:  # the controls services check again, each for its own change
        require(check, actor, Permission.CONTROL_SYSTEM, action="alert.mitigate", target=f"alert {alert_id}")
    if action not in MITIGATIONS:
        raise UserInputError(f"The mitigation must be one of {', '.join(MITIGATIONS)} (got {action!r}).")
    reason = required_reason(reason, "A reason is required for every change to the agent system.")
    rule = _rule_of_alert(UnitOfWork(uow.engine), alert_id)
    if action not in mitigations_for(rule):
        raise UserInputError(f"{MITIGATIONS[action]} does not fit alert #{alert_id} ({rule.key}).")
    why = f"alert #{alert_id} ({rule.key}): {reason}"
    if action == "disable_agent_type":
        controls.set_agent_type_enabled(actor=actor, agent_type=rule.agent_type, enabled=False, reason=why, uow=uow)
        return f"Agent type {rule.agent_type} disabled for alert #{alert_id}."
    if action == "kill_switch":
        controls.engage_kill_switch(actor=actor, reason=why, uow=uow)
        return f"Kill switch engaged for alert #{alert_id}."
    if action == "immediate_rollback":
        run = rollbacks.start_immediate_rollback(actor=actor, reason=why, uow=uow)
        return f"Immediate rollback run {run.id} started for alert #{alert_id} ({run.state})."
    return _go_limited(actor=actor, rule=rule, alert_id=alert_id, why=why, uow=uow)


def _go_limited(*, actor: Actor, rule: AlertRule, alert_id: int, why: str, uow: UnitOfWork) -> str:
    """Limited mode: every shop but the alert's own when it has one, else ALERT_LIMITED_PERCENT of shops."""
    if rule.shop_id is not None:
        with UnitOfWork(uow.engine) as read:
            shops = [i for i in read.session.scalars(select(Shop.id).order_by(Shop.id)) if i != rule.shop_id]
        if shops:
            controls.set_activation(actor=actor, mode="limited", reason=why, uow=uow, shops=shops)
            return f"Limited mode without shop {rule.shop_id} for alert #{alert_id}."
    percent = get_settings().alert_limited_percent
    controls.set_activation(actor=actor, mode="limited", reason=why, uow=uow, shop_percent=percent)
    return f"Limited mode ({percent}% of shops) for alert #{alert_id}."
