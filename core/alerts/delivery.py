"""Notifications: contact points (from settings and from the database), routing by severity and labels, grouping,
a repeat interval, an outbox that doubles as the delivery log, and the senders (Slack-compatible webhook,
SendGrid's HTTP API, a Sentry event) with retries and backoff.

The evaluator only writes outbox rows; `deliver_pending` sends them afterwards (in the run loop on a thread of its
own), so an unreachable contact point is retried and logged without ever holding up an evaluation."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.alerts.rules import SEVERITY_RANK, matches_all, parse_matchers
from core.config import MASK, Settings, get_settings, mask_url, mask_urls_in_text
from core.db import write_bind
from core.models import (
    AlertContact,
    AlertDelivery,
    AlertGroup,
    AlertRule,
    AlertSilence,
    AlertState,
    utcnow,
)

log = logging.getLogger(__name__)
SETTINGS_CONTACTS = ("webhook", "email", "sentry")


class DeliveryError(Exception):
    """A contact point did not accept a notification; the message is one line without secrets. FINAL: trying again
    cannot help (the request itself was refused), so it is not retried."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


# Answers that a later attempt may change: a timeout, a rate limit, a conflict. Other 4xx refuse the request itself.
RETRIED_4XX = (408, 409, 425, 429)


@dataclass(frozen=True)
class ContactPoint:
    name: str
    kind: str
    target: str  # the webhook URL (secret), the e-mail address, or '' for Sentry
    min_severity: str = "warning"
    matchers: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ("rule",)
    repeat_minutes: float | None = None
    enabled: bool = True
    source: str = "database"  # or "settings"

    @property
    def shown_target(self) -> str:
        """The target as a person may see it: a webhook URL without its path (Slack's holds the secret)."""
        return mask_webhook(self.target) if self.kind == "webhook" else (self.target or "(SENTRY_DSN)")


def mask_webhook(url: str) -> str:
    """A webhook URL masked (mask_url), its path cut to '/…': incoming-webhook paths are the secret itself."""
    masked = mask_url(url).split("?", 1)[0]
    scheme, sep, rest = masked.partition("://")
    if not sep:  # not a URL at all: the text may be the secret itself
        return f"{MASK} (not an http(s) URL)"
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host}/…" if path.strip("/") else f"{scheme}{sep}{host}{slash}"


def settings_contacts(s: Settings) -> list[ContactPoint]:
    """The contact points a deployment gives in settings: `webhook`, `email`, and `sentry` when a DSN is set."""
    out = []
    if s.alert_webhook_url:
        out.append(ContactPoint("webhook", "webhook", s.alert_webhook_url.get_secret_value(), source="settings"))
    if s.alert_email_to:
        out.append(ContactPoint("email", "email", s.alert_email_to, source="settings"))
    if s.sentry_dsn:
        out.append(ContactPoint("sentry", "sentry", "", source="settings"))
    return out


def list_contact_points(session: Session, settings: Settings | None = None) -> list[ContactPoint]:
    """Every contact point: those from settings first, then those kept in the database."""
    rows = session.scalars(select(AlertContact).order_by(AlertContact.name)).all()
    return settings_contacts(settings or get_settings()) + [
        ContactPoint(r.name, r.kind, r.target, r.min_severity, tuple(r.matchers or ()),
                     tuple(r.group_by or ()) or ("rule",), r.repeat_minutes, r.enabled) for r in rows]


def active_silences(session: Session, now: datetime) -> list[AlertSilence]:
    """Silences in force at NOW."""
    s = AlertSilence
    return list(session.scalars(select(s).where(s.starts_at <= now, s.ends_at > now, s.expired_by.is_(None))))


def silenced_by(labels: dict[str, str], silences: list[AlertSilence]) -> AlertSilence | None:
    """The first silence whose matchers all match LABELS."""
    return next((s for s in silences if matches_all(parse_matchers(list(s.matchers or [])), labels)), None)


@dataclass
class _Group:
    key: str
    alerts: list[dict[str, Any]] = field(default_factory=list)


def _summary(alert: AlertState, rule: AlertRule) -> dict[str, Any]:
    return {"id": alert.id, "rule": rule.key, "name": rule.name, "severity": rule.severity, "state": alert.state,
            "value": alert.value, "labels": dict(alert.labels or {}),
            "since": (alert.firing_since or alert.pending_since or alert.evaluated_at).isoformat()
            if (alert.firing_since or alert.pending_since or alert.evaluated_at) else None}


def _routed(contact: ContactPoint, labels: dict[str, str]) -> bool:
    return (SEVERITY_RANK.get(labels.get("severity", ""), 0) >= SEVERITY_RANK.get(contact.min_severity, 0)
            and matches_all(parse_matchers(list(contact.matchers)), labels))


def queue_notifications(session: Session, *, now: datetime, settings: Settings | None = None) -> int:
    """Put a notification in the outbox for every group of firing alerts that is new or changed for a contact
    point, or due for a repeat, and for every group that has just resolved; returns how many."""
    s = settings or get_settings()
    contacts = [c for c in list_contact_points(session, s) if c.enabled]
    if not contacts:
        return 0
    rules = {r.id: r for r in session.scalars(select(AlertRule))}
    silences = active_silences(session, now)
    all_firing = [a for a in session.scalars(select(AlertState).where(AlertState.state == "firing"))
                  if a.rule_id in rules]
    # Acknowledged and silenced alerts are not notified; when they leave a group it has not resolved.
    firing = [a for a in all_firing if not a.acked_by and silenced_by(dict(a.labels or {}), silences) is None]
    quiet = {str(a.id) for a in all_firing} - {str(a.id) for a in firing}
    queued = 0
    for contact in contacts:
        queued += _queue_for(session, contact, firing, quiet, rules, now, s)
    return queued


def _groups(contact: ContactPoint, firing: list[AlertState], rules: dict[int, AlertRule]) -> dict[str, _Group]:
    """The firing alerts routed to CONTACT, grouped by its grouping labels."""
    groups: dict[str, _Group] = {}
    for alert in firing:
        labels = dict(alert.labels or {})
        if _routed(contact, labels):
            key = ",".join(f"{k}={labels.get(k, '')}" for k in contact.group_by)[:300]
            groups.setdefault(key, _Group(key)).alerts.append(_summary(alert, rules[alert.rule_id]))
    return groups


def _queue_for(session: Session, contact: ContactPoint, firing: list[AlertState], quiet: set[str],
               rules: dict[int, AlertRule], now: datetime, s: Settings) -> int:
    groups = _groups(contact, firing, rules)
    stored = {g.group_key: g for g in session.scalars(select(AlertGroup).where(AlertGroup.contact == contact.name))}
    repeat = timedelta(minutes=contact.repeat_minutes or s.alert_repeat_minutes)
    queued = 0
    for key in sorted(set(groups) | set(stored)):
        group = groups.get(key, _Group(key))
        row = stored.get(key) or AlertGroup(contact=contact.name, group_key=key, fingerprint="", last_sent_at=now)
        session.add(row)
        fingerprint = ",".join(str(a["id"]) for a in sorted(group.alerts, key=lambda a: a["id"]))
        changed = fingerprint != row.fingerprint
        if changed and not fingerprint and set(row.fingerprint.split(",")) <= quiet:
            row.fingerprint = ""  # acknowledged or silenced, not resolved: nothing to say
            continue
        if (changed and (fingerprint or row.fingerprint)) or (fingerprint and now - row.last_sent_at >= repeat):
            session.add(AlertDelivery(created_at=now, contact=contact.name, kind=contact.kind, group_key=key,
                                      status="pending", payload=_payload("firing" if group.alerts else "resolved",
                                                                         key, group.alerts, repeat=not changed)))
            row.fingerprint, row.last_sent_at = fingerprint, now
            queued += 1
    return queued


def _payload(status: str, group: str, alerts: list[dict[str, Any]], *, repeat: bool = False,
             test: bool = False) -> dict[str, Any]:
    if test:
        text = "Test notification from the BookedBarber Agent Ops console: alerting is configured."
    elif status == "resolved":
        text = f"[RESOLVED] {group}: the alerts of this group are no longer firing."
    else:
        names = "; ".join(f"{a['name']} (value {_fmt(a['value'])})" for a in alerts[:10])
        text = f"[FIRING{' again' if repeat else ''}] {len(alerts)} alert(s) {group}: {names}"
    return {"text": text, "status": status, "group": group, "alerts": alerts, "test": test}


def _fmt(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4g}"


def test_payload() -> dict[str, Any]:
    """The body of a test notification."""
    return _payload("test", "test", [], test=True)


# --- sending ---------------------------------------------------------------------------------------------------

def send(contact: ContactPoint, payload: dict[str, Any], settings: Settings, *, event_id: str | None = None) -> None:
    """Send PAYLOAD to CONTACT once; raise DeliveryError (one line, no secrets) when it is not accepted. EVENT_ID
    names a Sentry event (the same for each attempt of one notification)."""
    if contact.kind == "webhook":
        _post(contact.target, {"text": payload["text"], **payload}, settings, ok=range(200, 300))
    elif contact.kind == "email":
        _send_email(contact.target, payload, settings)
    elif contact.kind == "sentry":
        _send_sentry(payload, settings, event_id or uuid.uuid4().hex)
    else:
        raise DeliveryError(f"unknown contact point kind {contact.kind!r}")


def _post(url: str, body: dict[str, Any] | bytes, settings: Settings, *, ok: range,
          headers: dict[str, str] | None = None, name: str | None = None) -> None:
    """POST BODY (JSON, or bytes as they are); NAME stands for the URL in errors when even its masked form says
    too much."""
    shown = name or mask_webhook(url)
    payload = {"data": body} if isinstance(body, bytes) else {"json": body}
    try:
        resp = requests.post(url, **payload, headers=headers or {}, timeout=settings.alert_timeout_seconds)
    except requests.RequestException as exc:  # its text repeats the URL's path and query: only its kind is kept
        kind = "timed out" if isinstance(exc, requests.Timeout) else f"could not be reached ({type(exc).__name__})"
        raise DeliveryError(f"{shown} {kind}") from None
    if resp.status_code not in ok:
        final = 400 <= resp.status_code < 500 and resp.status_code not in RETRIED_4XX
        raise DeliveryError(f"{shown} answered HTTP {resp.status_code}", final=final)


def _send_email(to: str, payload: dict[str, Any], s: Settings) -> None:
    if not s.sendgrid_api_key:
        raise DeliveryError("SENDGRID_API_KEY is not set")
    subject = payload["text"].split(":", 1)[0][:120]
    body = {"personalizations": [{"to": [{"email": a.strip()} for a in to.split(",") if a.strip()]}],
            "from": {"email": s.alert_email_from}, "subject": subject,
            "content": [{"type": "text/plain", "value": _email_text(payload)}]}
    _post(s.sendgrid_base_url.rstrip("/") + "/v3/mail/send", body, s, ok=range(200, 300),
          headers={"Authorization": f"Bearer {s.sendgrid_api_key.get_secret_value()}"})


def _email_text(payload: dict[str, Any]) -> str:
    lines = [payload["text"], ""]
    lines += [f"- #{a['id']} {a['name']} [{a['severity']}] value {_fmt(a['value'])} since {a['since']}"
              for a in payload.get("alerts", [])]
    return "\n".join(lines)


def _send_sentry(payload: dict[str, Any], s: Settings, event_id: str) -> None:
    # Straight to the ingest, not through the SDK: the SDK sends on a thread of its own and drops a refused
    # event silently, so "delivered" could not be told from "lost".
    if not s.sentry_dsn:
        raise DeliveryError("SENTRY_DSN is not set")
    from core.sentry import envelope_request

    level = "error" if payload["status"] == "firing" and not payload.get("test") else "info"
    tags = {"alert_group": payload["group"][:200], "alert_status": payload["status"]}
    url, body, headers = envelope_request(s, message=payload["text"], level=level, tags=tags, component="alerts",
                                          event_id=event_id)
    _post(url, body, s, ok=range(200, 300), headers=headers, name="the Sentry ingest")


def send_with_retries(contact: ContactPoint, payload: dict[str, Any], settings: Settings) -> tuple[int, str | None]:
    """Send with retries and exponential backoff; returns (attempts, error or None)."""
    attempts, event_id = 0, uuid.uuid4().hex  # every attempt is the same event: an ingest keeps one
    try:
        for attempt in Retrying(stop=stop_after_attempt(settings.alert_retry_attempts), reraise=True,
                                wait=wait_exponential(multiplier=settings.alert_retry_base_seconds, max=30),
                                retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and not e.final)):
            with attempt:
                attempts += 1
                send(contact, payload, settings, event_id=event_id)
    except DeliveryError as exc:
        return attempts, str(exc)
    return attempts, None


def deliver_pending(engine: Engine, *, owner: str, settings: Settings | None = None, ids: list[int] | None = None,
                    limit: int = 100) -> list[AlertDelivery]:
    """Send what the outbox holds (or the rows IDS); each row is claimed first, so two senders never send one
    notification twice. Returns the rows as they ended."""
    s = settings or get_settings()
    reclaim_stale(engine, s)
    with Session(bind=write_bind(engine), expire_on_commit=False) as session:
        q = select(AlertDelivery.id).where(AlertDelivery.status == "pending").order_by(AlertDelivery.id).limit(limit)
        wanted = list(session.scalars(q.where(AlertDelivery.id.in_(ids)) if ids is not None else q))
        contacts = {c.name: c for c in list_contact_points(session, s)}
        session.rollback()
    return [row for i in wanted if (row := _deliver_one(engine, i, owner, contacts, s)) is not None]


def reclaim_stale(engine: Engine, s: Settings) -> int:
    """Put back in the outbox what a sender claimed and never finished (it died mid-send): claimed longer ago than
    every attempt with its timeout and backoff could take."""
    budget = timedelta(seconds=s.alert_retry_attempts * (s.alert_timeout_seconds + 30) + 60)
    d = AlertDelivery
    with write_bind(engine).begin() as conn:
        return conn.execute(update(d).where(d.status == "sending", d.claimed_at < utcnow() - budget)
                            .values(status="pending")).rowcount


def _deliver_one(engine: Engine, delivery_id: int, owner: str, contacts: dict[str, ContactPoint],
                 s: Settings) -> AlertDelivery | None:
    with write_bind(engine).begin() as conn:
        claimed = conn.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id,
                                                           AlertDelivery.status == "pending")
                               .values(status="sending", claimed_by=owner, claimed_at=utcnow())).rowcount
    if claimed != 1:
        return None
    with Session(bind=write_bind(engine), expire_on_commit=False) as session:
        row = session.get(AlertDelivery, delivery_id)
        contact = contacts.get(row.contact)
        if contact is None:
            attempts, error = 0, f"the contact point {row.contact!r} no longer exists"
        else:
            attempts, error = send_with_retries(contact, dict(row.payload), s)
        row.status, row.attempts, row.finished_at = ("failed" if error else "sent"), attempts, utcnow()
        row.error = mask_urls_in_text(error) if error else None
        session.commit()
        if error:
            log.warning("alert notification %s to %s failed after %s attempts: %s", row.id, row.contact, attempts,
                        row.error)
        return row

