"""What the Alerts page, the CLI and the sidebar read: alerts with their age, history, rules, contact points,
silences and the delivery log; each limited to what the acting user may see."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.alerts.delivery import active_silences, list_contact_points, silenced_by
from core.alerts.metrics import METRICS, window_start
from core.alerts.rules import describe_threshold, matches_all, parse_matchers, resolve
from core.auth import Actor, Permission
from core.errors import UserInputError
from core.models import AlertDelivery, AlertRule, AlertSilence, AlertState, AlertTransition, utcnow
from core.queries.scope import require_read
from core.text import counted


# The alerts the Alerts page lists, and so the ones a silence holds back: its Silenced tile and a new silence's
# sentence count the same set (a resolved alert notifies no one, there is nothing to hold).
OPEN_STATES = ("pending", "firing")


def _visible_rules(actor: Actor) -> list[Any]:
    """Rules scoped to a shop are seen only by those who see that shop."""
    if actor.shop_ids is None:
        return []
    return [or_(AlertRule.shop_id.is_(None), AlertRule.shop_id.in_(sorted(actor.shop_ids)))]


def conversations_link(rule: AlertRule, alert: AlertState, now: datetime) -> str | None:
    """The Conversations page filtered to the alert's scope and window (metrics about conversations only)."""
    metric = METRICS.get(rule.metric)
    if metric is None or not metric.conversations:
        return None
    start = alert.pending_since or alert.firing_since or now
    params = {"agent_type": rule.agent_type, "shop": rule.shop_id,
              "status": "opted_out" if rule.metric.startswith("opt_out") else "failed",
              # the window the value was read over, not 60 minutes back: the conversations behind it are in it
              "since": window_start(resolve(rule).scope, start).isoformat(timespec="seconds"),
              "until": (alert.resolved_at or now).isoformat(timespec="seconds")}
    return "/conversations?" + urlencode({k: v for k, v in params.items() if v is not None})


def list_alerts(session: Session, *, actor: Actor, states: tuple[str, ...] | None = OPEN_STATES,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """Alerts in STATES (None: all), most severe and oldest first, with age, silence, acknowledgement and link."""
    require_read(actor, Permission.VIEW_HEALTH)
    now = now or utcnow()
    q = select(AlertState, AlertRule).join(AlertRule, AlertRule.id == AlertState.rule_id).where(*_visible_rules(actor))
    if states is not None:
        q = q.where(AlertState.state.in_(states))
    silences = active_silences(session, now)
    out = []
    for alert, rule in session.execute(q.order_by(AlertState.id)).all():
        since = alert.firing_since if alert.state == "firing" else (alert.pending_since or alert.resolved_at)
        silence = silenced_by(dict(alert.labels or {}), silences)
        out.append({"id": alert.id, "rule": rule.key, "name": rule.name, "severity": rule.severity,
                    "state": alert.state, "value": alert.value, "threshold": describe_threshold(rule),
                    "since": since, "age_s": (now - since).total_seconds() if since else None,
                    "labels": dict(alert.labels or {}), "acked_by": alert.acked_by, "ack_comment": alert.ack_comment,
                    "silenced_by": silence.id if silence else None, "agent_type": rule.agent_type,
                    "shop_id": rule.shop_id, "rollback_trigger": rule.rollback_trigger,
                    "link": conversations_link(rule, alert, now)})
    rank = {"critical": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda a: (a["state"] != "firing", rank.get(a["severity"], 3), -(a["age_s"] or 0)))


def count_firing(session: Session, *, actor: Actor, now: datetime | None = None) -> int:
    """How many alerts are firing and not silenced (for the sidebar: the Alerts page's own 'Firing' figure)."""
    require_read(actor, Permission.VIEW_HEALTH)
    labels = session.scalars(select(AlertState.labels).join(AlertRule, AlertRule.id == AlertState.rule_id)
                             .where(AlertState.state == "firing", *_visible_rules(actor))).all()
    if not labels:  # the usual case: no silence to read
        return 0
    silences = active_silences(session, now or utcnow())
    return sum(1 for one in labels if silenced_by(dict(one or {}), silences) is None)


def count_matching(session: Session, *, actor: Actor, matchers: list[str] | str) -> int:
    """How many open (pending or firing) alerts MATCHERS select now: those a silence of them holds back, as the
    Silenced tile counts; a new silence that selects none may be a typo."""
    require_read(actor, Permission.VIEW_HEALTH)
    parsed = parse_matchers(matchers)
    labels = session.scalars(select(AlertState.labels).join(AlertRule, AlertRule.id == AlertState.rule_id)
                             .where(AlertState.state.in_(OPEN_STATES), *_visible_rules(actor))).all()
    return sum(1 for one in labels if matches_all(parsed, dict(one or {})))


def silence_sentence(session: Session, *, actor: Actor, silence_id: int, matchers: list[str] | str) -> str:
    """What a person is told of a new silence: how many alerts it holds now (none: check the matchers)."""
    n = count_matching(session, actor=actor, matchers=matchers)
    if n == 0:
        return (f"Silence {silence_id} created; it matches no alert now (check the matchers if you meant a current "
                "one).")
    return f"Silence {silence_id} created; it matches {counted(n, 'alert')} now."


def list_history(session: Session, *, actor: Actor, hours: int = 24, limit: int = 2000,
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """State changes in the last HOURS (newest LIMIT), oldest first, for the timeline."""
    require_read(actor, Permission.VIEW_HEALTH)
    since = (now or utcnow()) - timedelta(hours=hours)
    t = AlertTransition
    rows = session.execute(select(t.alert_id, t.at, t.from_state, t.to_state, t.value, AlertRule.key)
                           .join(AlertRule, AlertRule.id == t.rule_id)
                           .where(t.at >= since, *_visible_rules(actor)).order_by(t.at.desc()).limit(limit)).all()
    return [{"alert": r.alert_id, "rule": r.key, "at": r.at, "from": r.from_state, "to": r.to_state,
             "value": r.value} for r in reversed(rows)]


def list_rules(session: Session, *, actor: Actor) -> list[dict[str, Any]]:
    """Every rule with its threshold as evaluated now (settings named by the rule are read)."""
    require_read(actor, Permission.VIEW_HEALTH)
    rows = session.scalars(select(AlertRule).where(*_visible_rules(actor)).order_by(AlertRule.id)).all()
    out = []
    for r in rows:
        res = resolve(r)
        out.append({"key": r.key, "name": r.name, "metric": r.metric, "condition": describe_threshold(r),
                    "window_min": res.scope.window_minutes, "pending_s": res.pending_seconds,
                    "keep_firing_s": r.keep_firing_seconds, "no_data": r.no_data, "severity": r.severity,
                    "agent_type": r.agent_type or "", "shop": r.shop_id, "rollback_trigger": r.rollback_trigger,
                    "enabled": r.enabled, "updated_by": r.updated_by})
    return out


def get_rule(session: Session, *, actor: Actor, key: str) -> AlertRule | None:
    """The rule KEY (for the edit form), or None."""
    require_read(actor, Permission.VIEW_HEALTH)
    return session.scalars(select(AlertRule).where(AlertRule.key == key, *_visible_rules(actor))).one_or_none()


def list_contacts(session: Session, *, actor: Actor) -> list[dict[str, Any]]:
    """Contact points with their routing; webhook URLs masked."""
    require_read(actor, Permission.VIEW_HEALTH)
    return [{"name": c.name, "kind": c.kind, "target": c.shown_target, "from": c.source,
             "min severity": c.min_severity, "matchers": ", ".join(c.matchers), "group by": ", ".join(c.group_by),
             "repeat (min)": c.repeat_minutes, "enabled": c.enabled} for c in list_contact_points(session)]


def list_silences(session: Session, *, actor: Actor, now: datetime | None = None) -> list[dict[str, Any]]:
    """Silences in force and those ended in the last day."""
    require_read(actor, Permission.VIEW_HEALTH)
    now = now or utcnow()
    s = AlertSilence
    rows = session.scalars(select(s).where(s.ends_at >= now - timedelta(days=1)).order_by(s.id.desc())).all()
    return [{"id": r.id, "matchers": ", ".join(r.matchers or []), "active": r.ends_at > now and r.starts_at <= now,
             "ends_at": r.ends_at, "reason": r.reason, "created_by": r.created_by, "expired_by": r.expired_by}
            for r in rows if _silence_visible(actor, r.matchers or [])]


def _silence_visible(actor: Actor, matchers: list[str]) -> bool:
    """A shop-scoped user sees the silences that name no shop or only their own (shop=N): one that names another
    shop, or matches shops by exclusion or pattern, tells them of shops and reasons outside their scope."""
    if actor.shop_ids is None:
        return True
    try:
        parsed = parse_matchers(matchers)
    except UserInputError:  # stored before a check that would refuse it now: show it to unscoped users only
        return False
    return all(m.op == "=" and m.value.isdigit() and actor.sees_shop(int(m.value))
               for m in parsed if m.label == "shop")


def list_deliveries(session: Session, *, actor: Actor, limit: int = 50,
                    before_id: int | None = None) -> list[dict[str, Any]]:
    """The delivery log, newest first, a page of LIMIT rows before BEFORE_ID (keyset)."""
    require_read(actor, Permission.VIEW_HEALTH)
    if actor.shop_ids is not None:  # notification texts name every shop's alerts; a shop-scoped user sees none
        return []
    d = AlertDelivery
    q = select(d).order_by(d.id.desc()).limit(limit)
    rows = session.scalars(q.where(d.id < before_id) if before_id else q).all()
    return [{"id": r.id, "at": r.created_at, "contact": r.contact, "kind": r.kind, "group": r.group_key,
             "status": r.status, "attempts": r.attempts, "error": r.error or "",
             "text": (r.payload or {}).get("text", "")} for r in rows]
