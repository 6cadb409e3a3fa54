"""Monitoring checks: a Sentry test event, alerting (rules in force, a test notification through core.alerts),
metrics being recorded."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from sqlalchemy import func, select

from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, warned
from core.config import mask_url
from core.db import read_session, snapshot_session
from core.errors import UserInputError
from core.alerts.delivery import list_contact_points
from core.models import AgentMetric, AgentMetricHourlyByType, AlertLease, AlertRule, utcnow
from core.rollups import floor_hour
from core.services.alerts import send_test_notification
from core.uow import UnitOfWork

TIMEOUT_SECONDS = 5.0


def _envelope(dsn: str, environment: str, release: str) -> tuple[str, bytes, str]:
    """(ingest URL, envelope body, event id) of one test message for DSN."""
    parts = urlsplit(dsn)
    project = parts.path.strip("/").split("/")[-1]
    base_path = "/".join(parts.path.strip("/").split("/")[:-1])
    url = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}" \
          f"{'/' + base_path if base_path else ''}/api/{project}/envelope/"
    event_id = uuid.uuid4().hex
    event = json.dumps({"event_id": event_id, "level": "info", "platform": "python", "environment": environment,
                        "release": release, "message": {"formatted": "agentops checklist: test event"},
                        "tags": {"component": "checklist"}}).encode()
    header = json.dumps({"event_id": event_id, "dsn": dsn}).encode()
    item = json.dumps({"type": "event", "length": len(event)}).encode()
    return url, header + b"\n" + item + b"\n" + event + b"\n", event_id


def check_sentry(ctx: CheckContext) -> Outcome:
    """SENTRY_DSN is set and Sentry accepts a test event (HTTP 200 from its ingest)."""
    if ctx.settings.sentry_dsn is None:
        return failed("Sentry test event", None, "SENTRY_DSN is not set")
    dsn = ctx.settings.sentry_dsn.get_secret_value()
    key = urlsplit(dsn).username
    url, body, event_id = _envelope(dsn, ctx.environment, ctx.release)
    resp = requests.post(url, data=body, timeout=TIMEOUT_SECONDS, headers={
        "Content-Type": "application/x-sentry-envelope",
        "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}, sentry_client=agentops-checklist/1.0"})
    value = {"dsn": mask_url(dsn), "status": resp.status_code, "event_id": event_id}
    return verdict(resp.status_code == 200, "Sentry test event", value,
                   f"accepted as event {event_id}" if resp.status_code == 200 else f"Sentry answered {resp.status_code}")


def check_alerting_configured(ctx: CheckContext) -> Outcome:
    """A failed-conversations rule is enabled, someone would hear it (a contact point), and an evaluator runs."""
    now = utcnow()
    with read_session(ctx.engine) as s:
        metrics = set(s.scalars(select(AlertRule.metric).where(AlertRule.enabled.is_(True))))
        contacts = [c.name for c in list_contact_points(s, ctx.settings) if c.enabled]
        lease = s.get(AlertLease, 1)
    running = lease is not None and lease.expires_at > now
    value = {"rules": len(metrics), "failed_conversations_rule": "failed_conversations" in metrics,
             "contact_points": contacts, "evaluator_running": running}
    if "failed_conversations" not in metrics:
        return failed("alerting configured", value, "no enabled rule on failed conversations: run "
                                                    "`python -m core alerts defaults`")
    if not contacts:
        return failed("alerting configured", value, "no contact point: set ALERT_WEBHOOK_URL or ALERT_EMAIL_TO, or "
                                                    "add one on the Alerts page")
    if not running:
        return warned("alerting configured", value, "rules and contact points are set, but no evaluator holds the "
                                                    "lease: start `python -m core alerts run`")
    return passed("alerting configured", value, f"{len(metrics)} metric(s) watched, notifying " + ", ".join(contacts))


def check_alerting(ctx: CheckContext) -> Outcome:
    """Alert rules are in force and a test notification reaches every enabled contact point (core.alerts)."""
    with read_session(ctx.engine) as s:
        rules = s.scalar(select(func.count()).select_from(AlertRule).where(AlertRule.enabled.is_(True))) or 0
    if not rules:
        return failed("alerting", {"rules": 0}, "no alert rule is enabled: run `python -m core alerts defaults` "
                                                "or start the evaluator (`python -m core alerts run`)")
    try:
        results = send_test_notification(actor=ctx.actor, uow=UnitOfWork(ctx.engine))
    except UserInputError as exc:  # no contact point: configured rules that nobody would hear
        return failed("alerting", {"rules": rules, "contact_points": 0}, str(exc))
    value = {"rules": rules, "deliveries": [{"contact": r.contact, "delivered": r.ok, "attempts": r.attempts,
                                             "error": r.error} for r in results]}
    missed = [f"{r.contact} ({r.error or 'not delivered'})" for r in results if not r.ok]
    detail = ("test notification not delivered to " + ", ".join(missed)) if missed else \
        f"{rules} rule(s) enabled; test notification delivered to " + ", ".join(r.contact for r in results)
    return verdict(not missed, "alerting: rules and a test notification", value, detail)


def check_metrics_recorded(ctx: CheckContext) -> Outcome:
    """The rollups that feed the metrics have rows from the last 24 hours."""
    since = floor_hour(utcnow() - timedelta(hours=24))
    with read_session(ctx.engine) as session, snapshot_session(session) as s:  # the prober folds meanwhile
        rows = [s.execute(select(m.hour, func.sum(m.created)).where(m.hour >= since).group_by(m.hour)).all()
                for m in (AgentMetric, AgentMetricHourlyByType)]  # not folded yet, and closed hours folded
        created = sum(int(n or 0) for part in rows for _, n in part)
        hours = len({hour for part in rows for hour, _ in part})
    value = {"conversations_24h": int(created), "hours_with_data": int(hours)}
    if not created:
        return warned("metrics recorded (24 h)", value, "no conversations recorded in the last 24 hours")
    return passed("metrics recorded (24 h)", value, f"{created} conversations in {hours} hour(s) of rollups")
