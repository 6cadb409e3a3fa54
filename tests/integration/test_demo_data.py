"""`seed --test-data demo` shows a newcomer what the console is for: every panel has something in it."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import Engine, exists, select

from core.auth import system_actor
from core.config import get_settings
from core.db import read_session
from core.models import AuditRecord, Conversation, Message, RollbackRun, utcnow
from core.queries import metrics
from core.queries.controls import evaluate_rollback_triggers
from core.seed.runner import seed

ACTOR = system_actor("test")


def test_demo_data_has_failures_an_opt_out_a_slow_hour_a_past_rollback_and_a_refused_read(engine: Engine) -> None:
    seed(actor=ACTOR, engine=engine, size="demo")
    settings, now = get_settings(), utcnow()
    with read_session(engine) as s:
        errors = set(s.scalars(select(Conversation.error).where(Conversation.status == "failed")))
        stop = s.scalars(select(Message.content).join(Conversation, Conversation.id == Message.conversation_id)
                         .where(Conversation.status == "opted_out", Message.role == "client")).first()
        hours = metrics.get_timeseries(s, actor=ACTOR, window_hours=24)
        days = metrics.get_timeseries(s, actor=ACTOR, window_hours=24 * 7)
        runs = s.scalars(select(RollbackRun)).all()
        refused = s.scalars(select(AuditRecord).where(AuditRecord.outcome == "refused",
                                                      AuditRecord.action == "conversation.read")).all()
        triggers = {t.key: t for t in evaluate_rollback_triggers(s, actor=ACTOR)}
    assert len(errors) >= 3 and all(re.match(r"[a-z_.]+\.[A-Z]\w+: .+", e) for e in errors), errors  # module.Type: text
    assert stop == "STOP"
    slow = [h for h in hours if h["p95_response_ms"] and h["p95_response_ms"] > 2 * settings.sc_response_p95_ms]
    assert len(slow) == 1, "one slow hour in the last day, far over the goal"
    burst = [d for d in days if d["error_rate"] and d["error_rate"] > 0.01]
    assert burst and burst[0]["period"] < now - timedelta(days=1), "a model outage a few days ago"
    assert [(r.kind, r.state) for r in runs] == [("immediate", "done")]
    assert now - timedelta(days=6) < runs[0].started_at < now - timedelta(days=1)
    assert "rollback trigger" in runs[0].outcome
    assert [(r.actor, r.actor_role) for r in refused] == [("support", "support")]
    assert triggers["unauthorized"].fired and "support: conversation.read" in triggers["unauthorized"].detail


def test_a_client_who_replied_stop_is_opted_out_and_never_messaged_again(engine: Engine) -> None:
    """The demo's clients replied STOP, yet the workers went on messaging 73 of them: no seeded client was marked
    opted out by their STOP, and the history itself had agent messages after it."""
    from core.models import Client

    seed(actor=ACTOR, engine=engine, size="demo", conversations=1500)
    with read_session(engine) as s:
        stops = dict(s.execute(select(Conversation.client_id, Message.created_at)
                               .join(Message, Message.conversation_id == Conversation.id)
                               .where(Message.role == "client", Message.content == "STOP")
                               .order_by(Message.created_at.desc())).all())  # each client's first STOP wins
        flagged = set(s.scalars(select(Client.id).where(Client.opted_out)))
        sent = s.execute(select(Conversation.client_id, Message.created_at)
                         .join(Message, Message.conversation_id == Conversation.id).where(Message.role == "agent")).all()
        created = s.scalars(select(Conversation.created_at).order_by(Conversation.id)).all()
        held_back = s.scalars(select(Conversation.id).where(Conversation.status == "opted_out",
                                                            ~exists().where(Message.conversation_id == Conversation.id))).all()
    assert len(stops) >= 20 and set(stops) <= flagged
    assert [(c, at) for c, at in sent if c in stops and at > stops[c]] == []
    assert [c for c, _ in sent if c in flagged - set(stops)] == [], "opted out before the history: never messaged"
    assert held_back, "conversations after a STOP end opted out without a message, as the worker ends them"
    assert created == sorted(created), "ids grow with time"
