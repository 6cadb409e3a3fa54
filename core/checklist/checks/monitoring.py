"""Monitoring checks: a Sentry test event, alerting (rules and a test notification), metrics being recorded."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from sqlalchemy import func, select

from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, warned
from core.config import mask_url
from core.db import read_session
from core.models import AgentMetric, utcnow
from core.rollups import floor_hour

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


def check_alerting(ctx: CheckContext) -> Outcome:
    """Alert rules watch failed conversations, and a test notification reaches every contact point (core.alerts)."""
    from core.errors import UserInputError
    from core.models import AlertRule
    from core.services.alerts import send_test_notification
    from core.uow import UnitOfWork

    with read_session(ctx.engine) as s:
        rules = list(s.scalars(select(AlertRule.key).where(
            AlertRule.enabled.is_(True), AlertRule.metric.in_(("failed_conversations", "error_rate")))))
    if not rules:
        return warned("alerting", {"rules": []}, "not configured: no enabled alert rule watches failed conversations "
                                                 "(`python -m core alerts defaults`, or start `alerts run`)")
    try:
        sent = send_test_notification(actor=ctx.actor, uow=UnitOfWork(ctx.engine))
    except UserInputError as exc:
        return warned("alerting", {"rules": rules}, f"not configured: {exc}")
    value = {"rules": rules, "deliveries": [{"contact": r.contact, "delivered": r.ok, "attempts": r.attempts,
                                             "error": r.error} for r in sent]}
    bad = [f"{r.contact}: {r.error}" for r in sent if not r.ok]
    return verdict(not bad, "alerting", value, "; ".join(bad) or
                   f"{len(rules)} rules on failed conversations; a test notification reached "
                   + ", ".join(r.contact for r in sent))


def check_metrics_recorded(ctx: CheckContext) -> Outcome:
    """The rollups that feed the metrics have rows from the last 24 hours."""
    since = floor_hour(utcnow() - timedelta(hours=24))
    with read_session(ctx.engine) as s:
        created, hours = s.execute(select(func.coalesce(func.sum(AgentMetric.created), 0),
                                          func.count(func.distinct(AgentMetric.hour))).where(AgentMetric.hour >= since)).one()
    value = {"conversations_24h": int(created), "hours_with_data": int(hours)}
    if not created:
        return warned("metrics recorded (24 h)", value, "no conversations recorded in the last 24 hours")
    return passed("metrics recorded (24 h)", value, f"{created} conversations in {hours} hour(s) of rollups")
