"""Alerts on both databases: the state machine with history, notifications through loopback stand-ins (webhook,
SendGrid), silences, the repeat interval, two evaluators, invalid rules, an unreachable webhook, acknowledgements,
mitigations through the controls services and AUTO_ROLLBACK."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, event, func, select, update

from core.alerts.delivery import deliver_pending
from core.alerts.evaluator import evaluate, release_lease
from core.alerts.runner import run_cycle
from core.auth import system_actor
from core.cli import main
from core.config import get_settings, reset_settings
from core.db import read_session
from core.errors import PermissionDenied, UserInputError
from core.models import (
    AgentSettings,
    AlertDelivery,
    AlertLease,
    AlertRule,
    AlertState,
    AlertTransition,
    AuditRecord,
    Conversation,
    RollbackRun,
    utcnow,
)
from core.rollups import floor_hour
from core.rollups_sums import fold_closed_sums
from core.services import alerts
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal, unfold_recent_hours
from tests.support.fake_receiver import FakeReceiver
from tests.support.net import free_port

ENGINEER = ROLE_ACTORS["engineer"]
RULE = {"key": "t_unauth", "name": "Refused client-data reads", "metric": "unauthorized_access", "threshold": 0,
        "window_minutes": 60, "pending_seconds": 60, "severity": "critical"}


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReceiver]:
    server = FakeReceiver().start()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", server.url + "/hook")
    monkeypatch.setenv("ALERT_RETRY_BASE_SECONDS", "0")
    reset_settings()
    yield server
    server.stop()


def refused_read(engine: Engine) -> None:
    """Someone tried to read another shop's conversation (the audited refusal the metric counts)."""
    record_refusal(actor=ROLE_ACTORS["support"], action="conversation.read", target="conversation 99",
                   reason="outside shop scope", uow=UnitOfWork(engine))


def rule(engine: Engine, **changes) -> int:
    return alerts.save_rule(actor=ENGINEER, spec={**RULE, **changes}, uow=UnitOfWork(engine))


def history(engine: Engine) -> list[tuple[str, str]]:
    with read_session(engine) as s:
        return [(t.from_state, t.to_state) for t in s.scalars(select(AlertTransition).order_by(AlertTransition.id))]


def deliveries(engine: Engine) -> list[AlertDelivery]:
    with read_session(engine) as s:
        return list(s.scalars(select(AlertDelivery).order_by(AlertDelivery.id)))


def test_normal_pending_firing_resolved_with_history_and_notifications(engine: Engine, webhook: FakeReceiver) -> None:
    rule(engine)
    t0 = utcnow()
    assert evaluate(engine, owner="a", now=t0).transitions == []
    refused_read(engine)
    evaluate(engine, owner="a", now=t0 + timedelta(seconds=1))
    evaluate(engine, owner="a", now=t0 + timedelta(seconds=30))
    assert history(engine) == [("normal", "pending")]
    fired = evaluate(engine, owner="a", now=t0 + timedelta(seconds=62))
    assert [(a, b) for _i, a, b in fired.transitions] == [("pending", "firing")] and fired.queued == 1
    deliver_pending(engine, owner="a")
    [body] = webhook.bodies("/hook")
    assert body["text"].startswith("[FIRING] 1 alert(s)") and "Refused client-data reads" in body["text"]
    evaluate(engine, owner="a", now=t0 + timedelta(hours=2))  # the refusal left the 60-minute window
    deliver_pending(engine, owner="a")
    assert history(engine) == [("normal", "pending"), ("pending", "firing"), ("firing", "resolved")]
    assert webhook.bodies("/hook")[-1]["status"] == "resolved"


def test_keep_firing_for_holds_a_firing_alert_after_the_condition_clears(engine: Engine) -> None:
    rule(engine, pending_seconds=0, keep_firing_seconds=600)
    refused_read(engine)
    t0 = utcnow()
    evaluate(engine, owner="a", now=t0)
    evaluate(engine, owner="a", now=t0 + timedelta(minutes=59))  # the refusal is still in the 60-minute window
    evaluate(engine, owner="a", now=t0 + timedelta(minutes=61))  # condition false, but within keep-firing
    assert history(engine)[-1] == ("pending", "firing")
    evaluate(engine, owner="a", now=t0 + timedelta(minutes=72))
    assert history(engine)[-1] == ("firing", "resolved")


def test_no_data_handling(engine: Engine) -> None:
    """No workers: no memory figure. 'alerting' treats that as the condition, 'ok' as normal."""
    alerts.save_rule(actor=ENGINEER, spec={"key": "mem_nodata", "metric": "worker_memory_mb", "threshold": 1,
                                           "no_data": "alerting"}, uow=UnitOfWork(engine))
    alerts.save_rule(actor=ENGINEER, spec={"key": "mem_ok", "metric": "worker_memory_mb", "threshold": 1,
                                           "no_data": "ok"}, uow=UnitOfWork(engine))
    evaluate(engine, owner="a")
    with read_session(engine) as s:
        states = dict(s.execute(select(AlertRule.key, AlertState.state).join(AlertRule)).all())
    assert states == {"mem_nodata": "firing", "mem_ok": "normal"}


def test_a_repeat_waits_for_the_repeat_interval(engine: Engine, webhook: FakeReceiver,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_REPEAT_MINUTES", "5")
    reset_settings()
    rule(engine, pending_seconds=0)
    refused_read(engine)
    t0 = utcnow()
    for seconds in (0, 15, 30, 120, 299):
        evaluate(engine, owner="a", now=t0 + timedelta(seconds=seconds))
    deliver_pending(engine, owner="a")
    assert len(webhook.bodies("/hook")) == 1
    evaluate(engine, owner="a", now=t0 + timedelta(seconds=301))
    deliver_pending(engine, owner="a")
    assert [b["text"][:15] for b in webhook.bodies("/hook")] == ["[FIRING] 1 aler", "[FIRING again] "]


def test_a_silence_suppresses_notifications_and_an_acknowledgement_stops_repeats(
        engine: Engine, webhook: FakeReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_REPEAT_MINUTES", "1")
    reset_settings()
    rule(engine, pending_seconds=0)
    silence = alerts.create_silence(actor=ENGINEER, matchers="rule=t_unauth", minutes=30, reason="maintenance",
                                    uow=UnitOfWork(engine))
    refused_read(engine)
    t0 = utcnow()
    evaluate(engine, owner="a", now=t0)
    assert deliveries(engine) == [] and history(engine)[-1] == ("pending", "firing")  # evaluated, not notified
    alerts.expire_silence(actor=ENGINEER, silence_id=silence, uow=UnitOfWork(engine))
    evaluate(engine, owner="a", now=utcnow())
    assert len(deliveries(engine)) == 1
    with read_session(engine) as s:
        alert_id = s.scalar(select(AlertState.id))
    alerts.acknowledge_alert(actor=ENGINEER, alert_id=alert_id, comment="looking into it", uow=UnitOfWork(engine))
    evaluate(engine, owner="a", now=utcnow() + timedelta(minutes=3))  # past the repeat interval
    assert len(deliveries(engine)) == 1
    with read_session(engine) as s:
        alert = s.get(AlertState, alert_id)
    assert (alert.acked_by, alert.ack_comment) == ("erin", "looking into it")


def test_two_evaluators_send_one_notification(engine: Engine, webhook: FakeReceiver) -> None:
    rule(engine, pending_seconds=0)
    refused_read(engine)
    barrier, results = threading.Barrier(2), []

    def evaluator(name: str) -> None:
        barrier.wait()
        results.append(run_cycle(engine, owner=name))

    threads = [threading.Thread(target=evaluator, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.evaluated for r in results) == [False, True]  # the lease: one evaluates at a time
    for name in ("one", "two"):
        release_lease(engine, owner=name)
    run_cycle(engine, owner="three")  # a later evaluator finds the group already notified
    assert len(webhook.bodies("/hook")) == 1
    assert [d.status for d in deliveries(engine)] == ["sent"]


def test_an_invalid_rule_is_one_sentence_and_not_saved(engine: Engine) -> None:
    bad = [({"metric": "nope"}, "Unknown metric 'nope'"), ({"pending_seconds": -5}, "cannot be negative"),
           ({"threshold_setting": "cookie_key"}, "not a numeric setting"),
           ({"agent_type": "upsell"}, "has no agent-type or shop scope")]
    for change, sentence in bad:
        with pytest.raises(UserInputError, match=sentence) as err:
            rule(engine, **change)
        assert "\n" not in str(err.value)
    with pytest.raises(UserInputError, match="Bad matcher 'rule'"):
        alerts.create_silence(actor=ENGINEER, matchers="rule", minutes=5, reason="r", uow=UnitOfWork(engine))
    for minutes, said in ((99999999.0, "got 99,999,999."), (-0.5, "got -0.5.")):  # the number as typed, not 99999999.0
        with pytest.raises(UserInputError) as err:
            alerts.create_silence(actor=ENGINEER, matchers="rule=x", minutes=minutes, reason="r",
                                  uow=UnitOfWork(engine))
        assert str(err.value).endswith(said)
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AlertRule)) == 0


def test_rules_are_edited_by_engineers_only_and_audited(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        alerts.save_rule(actor=ROLE_ACTORS["product_owner"], spec=RULE, uow=UnitOfWork(engine))
    rule(engine)
    rule(engine, severity="warning")
    with read_session(engine) as s:
        actions = s.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)).all()
        assert s.scalar(select(AlertRule.severity)) == "warning"
    assert actions == ["alert_rule.save", "alert_rule.create", "alert_rule.update"]


def test_an_unreachable_webhook_is_retried_and_logged_without_holding_up_evaluation(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook/s3cret-path?token=s3cret")
    monkeypatch.setenv("ALERT_RETRY_BASE_SECONDS", "0")
    reset_settings()
    rule(engine, pending_seconds=0)
    refused_read(engine)
    result = evaluate(engine, owner="a")
    assert result.queued == 1 and [d.status for d in deliveries(engine)] == ["pending"]  # state committed first
    deliver_pending(engine, owner="a")
    [failed] = deliveries(engine)
    assert (failed.status, failed.attempts) == ("failed", get_settings().alert_retry_attempts)
    assert failed.error == f"http://127.0.0.1:{port}/… could not be reached (ConnectionError)"
    assert "s3cret" not in failed.error
    assert evaluate(engine, owner="a").evaluated  # the next cycle runs as ever


def test_test_notification_through_sendgrid_and_the_cli(engine: Engine, webhook: FakeReceiver,
                                                         monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.com")
    monkeypatch.setenv("SENDGRID_BASE_URL", webhook.url)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test-key-1234")
    reset_settings()
    results = alerts.send_test_notification(actor=ENGINEER, contact="email", uow=UnitOfWork(engine))
    assert [(r.contact, r.ok) for r in results] == [("email", True)]
    [mail] = webhook.received
    assert mail["path"] == "/v3/mail/send" and mail["headers"]["Authorization"] == "Bearer SG.test-key-1234"
    assert mail["json"]["personalizations"][0]["to"] == [{"email": "oncall@example.com"}]
    assert main(["alerts", "test"]) == 0
    out = capsys.readouterr().out
    assert "webhook: delivered after 1 attempt(s)" in out and "email: delivered" in out
    assert main(["alerts", "test", "--contact", "pager"]) == 2


def test_mitigations_go_through_the_controls_services_with_the_alert_id(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    alerts.save_rule(actor=ENGINEER, spec={"key": "upsell_failed", "metric": "failed_conversations", "op": ">=",
                                           "threshold": 0, "agent_type": "upsell", "severity": "critical"},
                     uow=UnitOfWork(engine))
    evaluate(engine, owner="a")
    with read_session(engine) as s:
        alert_id = s.scalar(select(AlertState.id).where(AlertState.state == "firing"))
    said = alerts.mitigate_alert(actor=ENGINEER, alert_id=alert_id, action="disable_agent_type", reason="bad prompt",
                                 uow=UnitOfWork(engine))
    assert said == f"Agent type upsell disabled for alert #{alert_id}."
    with read_session(engine) as s:
        assert "upsell" in s.get(AgentSettings, 1).disabled_agent_types
        rec = s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()
    assert rec.action == "agent_type.disable" and rec.reason == f"alert #{alert_id} (upsell_failed): bad prompt"
    with pytest.raises(PermissionDenied):
        alerts.mitigate_alert(actor=ROLE_ACTORS["product_owner"], alert_id=alert_id, action="kill_switch",
                              reason="x", uow=UnitOfWork(engine))


def test_auto_rollback_runs_the_immediate_rollback_for_a_firing_trigger(engine: Engine,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    rule(engine, pending_seconds=0, rollback_trigger=True)
    refused_read(engine)
    run_cycle(engine, owner="a")
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RollbackRun)) == 0  # AUTO_ROLLBACK is off by default
    alerts.delete_rule(actor=ENGINEER, key="t_unauth", uow=UnitOfWork(engine))
    rule(engine, pending_seconds=0, rollback_trigger=True)
    monkeypatch.setenv("AUTO_ROLLBACK", "true")
    reset_settings()
    run_cycle(engine, owner="a")
    with read_session(engine) as s:
        run = s.scalars(select(RollbackRun)).one()
        alert_id = s.scalar(select(AlertState.id))
    assert run.kind == "immediate" and run.requested_by == "alerts:auto-rollback"
    with read_session(engine) as s:
        reasons = s.scalars(select(AuditRecord.reason).where(AuditRecord.action == "rollback.immediate.start")).all()
    assert reasons == [f"AUTO_ROLLBACK: alert #{alert_id} (t_unauth) is firing"]


def test_cli_run_once_installs_the_default_rules(engine: Engine, capsys) -> None:
    assert main(["alerts", "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "installed 14 default alert rules" in out and "evaluated 14 rules" in out
    with read_session(engine) as s:
        keys = set(s.scalars(select(AlertRule.threshold_setting)))
    assert {"rb_query_ms", "rb_memory_mb", "rb_unauthorized_max", "sc_response_p95_ms", "sc_error_rate"} <= keys
    system_actor()  # the shell operator ran it


def test_routing_by_severity_and_labels_and_grouping(engine: Engine, webhook: FakeReceiver) -> None:
    """A contact point kept in the database hears only critical alerts of shop 1, grouped by severity: two such
    alerts make one notification; the settings contact `webhook` hears warning and above, one group per rule."""
    seed_minimal(engine, conversations=0)  # shops 1 and 2: a rule on a shop that does not exist is refused
    pager = FakeReceiver().start()
    try:
        alerts.save_contact_point(actor=ENGINEER, name="pager", kind="webhook", target=pager.url + "/p",
                                  min_severity="critical", matchers=["shop=1"], group_by=["severity"],
                                  uow=UnitOfWork(engine))
        for key, severity, shop in (("a1", "critical", 1), ("a2", "critical", 1), ("a3", "warning", 1),
                                    ("a4", "critical", 2)):
            alerts.save_rule(actor=ENGINEER, spec={"key": key, "metric": "failed_conversations", "op": ">=",
                                                   "threshold": 0, "severity": severity, "shop_id": shop},
                             uow=UnitOfWork(engine))
        evaluate(engine, owner="a")
        deliver_pending(engine, owner="a")
        [page] = pager.bodies("/p")
        assert page["group"] == "severity=critical" and sorted(a["rule"] for a in page["alerts"]) == ["a1", "a2"]
        assert sorted(b["group"] for b in webhook.bodies("/hook")) == ["rule=a1", "rule=a2", "rule=a3", "rule=a4"]
    finally:
        pager.stop()


def test_a_sentry_contact_point_sends_an_event(engine: Engine, db_url: str) -> None:
    """SENTRY_DSN makes a contact point `sentry`; the test notification reaches a loopback Sentry ingest."""
    import os
    import subprocess
    import sys

    from tests.support.fake_sentry import FakeSentry

    sentry = FakeSentry().start()
    try:
        env = {**os.environ, "DATABASE_URL": db_url, "SENTRY_DSN": sentry.dsn}
        done = subprocess.run([sys.executable, "-m", "core", "alerts", "test", "--contact", "sentry"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "sentry: delivered after 1 attempt(s)"
        [event] = sentry.error_events()
        assert "Test notification" in str(event.get("message") or event.get("logentry"))
        assert event["tags"]["component"] == "alerts"
    finally:
        sentry.stop()


@pytest.mark.parametrize("status, attempts", [(403, 1), (503, 3)])
def test_a_sentry_ingest_that_refuses_the_event_is_a_failed_delivery(engine: Engine, db_url: str, status: int,
                                                                     attempts: int) -> None:
    """The SDK drops a refused event silently; `alerts test` must not call it delivered. A refusal of the request
    (403) is not tried again; an outage (503) is, with the same event id, so an ingest that did keep an attempt
    keeps one event; and the secret key of the DSN never travels in the body."""
    import os
    import subprocess
    import sys

    from tests.support.fake_sentry import FakeSentry

    sentry = FakeSentry(status=status).start()
    try:
        dsn = sentry.dsn.replace("http://public@", "http://public:s3cr3t@")
        env = {**os.environ, "DATABASE_URL": db_url, "SENTRY_DSN": dsn, "ALERT_RETRY_ATTEMPTS": "3",
               "ALERT_RETRY_BASE_SECONDS": "0.01"}
        done = subprocess.run([sys.executable, "-m", "core", "alerts", "test", "--contact", "sentry"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode != 0
        assert "delivered" not in done.stdout
        out = done.stdout + done.stderr
        assert f"the Sentry ingest answered HTTP {status}" in out and "s3cr3t" not in out and "Traceback" not in out
        assert len(sentry.attempts) == attempts and len({event_id for event_id, _ in sentry.attempts}) == 1
        assert all("s3cr3t" not in json.dumps(header) for _, header in sentry.attempts)
    finally:
        sentry.stop()


def test_a_support_user_sees_only_alerts_of_their_shops(engine: Engine) -> None:
    from core.queries.alerts import count_firing, list_alerts

    seed_minimal(engine, conversations=0)  # shops 1 and 2: a rule on a shop that does not exist is refused
    for key, shop in (("s1", 1), ("s2", 2)):
        alerts.save_rule(actor=ENGINEER, spec={"key": key, "metric": "failed_conversations", "op": ">=",
                                               "threshold": 0, "shop_id": shop}, uow=UnitOfWork(engine))
    evaluate(engine, owner="a")
    with read_session(engine) as s:
        assert [a["rule"] for a in list_alerts(s, actor=ROLE_ACTORS["support"])] == ["s1"]
        assert count_firing(s, actor=ROLE_ACTORS["support"]) == 1
        [mine] = list_alerts(s, actor=ENGINEER, states=("firing",))[:1]
    assert mine["link"].startswith("/conversations?") and "status=failed" in mine["link"]
    # The link starts where the value's window did (on the hour): it started 60 minutes before the alert, and showed
    # none of the conversations that had set it off.
    from urllib.parse import parse_qs, urlsplit

    since = datetime.fromisoformat(parse_qs(urlsplit(mine["link"]).query)["since"][0])
    assert (since.minute, since.second) == (0, 0) and since <= mine["since"] - timedelta(minutes=60)


def test_default_rules_read_worker_heartbeats_and_their_settings(engine: Engine) -> None:
    """A live worker at 3,000 MB (RB_MEMORY_MB is 2,048) with its breaker open: the memory trigger fires at once,
    the breaker alert waits ALERT_BREAKER_OPEN_SECONDS; no heartbeat for longer than ALERT_HEARTBEAT_SECONDS fires."""
    from core.models import WorkerHeartbeat

    alerts.install_default_rules(actor=ENGINEER, uow=UnitOfWork(engine))
    now = utcnow()
    with UnitOfWork(engine) as uow:  # what a worker's heartbeat writes (telemetry, no audit)
        uow.session.add(WorkerHeartbeat(id="w1", host="h", pid=1, last_seen_at=now, rss_mb=3000, rss_start_mb=2990,
                                        cpu_percent=3, breaker_state="open"))
        uow.commit()

    def states() -> dict[str, str]:
        with read_session(engine) as s:
            return dict(s.execute(select(AlertRule.key, AlertState.state).join(AlertRule)).all())

    evaluate(engine, owner="a", now=now)
    got = states()
    assert (got["worker_memory_trigger"], got["breaker_open"], got["worker_memory_growth"]) == (
        "firing", "pending", "normal")
    evaluate(engine, owner="a", now=now + timedelta(seconds=61))  # the worker is no longer live: silence, stale
    got = states()
    assert got["worker_heartbeat"] == "firing" and got["worker_memory_trigger"] == "resolved"


def test_a_stopped_evaluator_gives_up_its_lease(engine: Engine) -> None:
    """SIGTERM (make run, a container stop) ends `alerts run` cleanly: the next evaluator need not wait 45 s.

    The signal lands while a cycle waits for the lease row (another transaction holds it; the next cycle is due
    0.3 s after the first): the cycle ends and the process exits 0. Raised from the handler, the signal once broke
    into that database write (exit 130), and under load the cleanup could then wait on the write's lock past 20 s."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": str(engine.url.render_as_string(hide_password=False))}
    proc = subprocess.Popen([sys.executable, "-m", "core", "alerts", "run", "--every", "0.3"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # its banner, the rules installed, a first cycle
        assert lines[-1].startswith("evaluated "), lines
        with engine.connect() as conn:  # the lease row is held: the next cycle waits inside its write
            conn.execute(update(AlertLease).where(AlertLease.id == 1).values(owner=AlertLease.owner))
            threading.Event().wait(0.8)
            proc.send_signal(signal.SIGTERM)
            threading.Event().wait(0.5)
            conn.rollback()
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    with read_session(engine) as s:
        assert s.get(AlertLease, 1).expires_at <= utcnow()
    assert evaluate(engine, owner="next").evaluated


def test_a_webhook_secret_is_kept_out_of_audit_records_logs_and_views(engine: Engine, backend: str) -> None:
    """An incoming-webhook URL is a secret in its path (Slack: /services/T/B/XXXX) and sometimes in its query."""
    from core.queries.alerts import list_contacts

    url = "https://hooks.example/services/T000/B000/s3cretPath?token=s3cretQuery"
    alerts.save_contact_point(actor=ENGINEER, name="team-chat", kind="webhook", target=url, uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="name is 1–64 letters"):
        alerts.save_contact_point(actor=ENGINEER, name="[click](http://x)", kind="webhook", target=url,
                                  uow=UnitOfWork(engine))
    with read_session(engine) as s:
        stored = " ".join(str(r.after) + r.target for r in s.scalars(select(AuditRecord)))
        shown = str(list_contacts(s, actor=ROLE_ACTORS["product_owner"]))
    assert "s3cret" not in stored and "s3cret" not in shown
    assert "https://hooks.example/…" in shown


def test_a_notification_whose_sender_died_is_sent_again(engine: Engine, webhook: FakeReceiver) -> None:
    rule(engine, pending_seconds=0)
    refused_read(engine)
    evaluate(engine, owner="a")
    with engine.begin() as conn:  # a sender claimed it an hour ago and never came back
        conn.execute(AlertDelivery.__table__.update().values(status="sending", claimed_by="dead",
                                                              claimed_at=utcnow() - timedelta(hours=1)))
    deliver_pending(engine, owner="b")
    assert [(d.status, d.claimed_by) for d in deliveries(engine)] == [("sent", "b")]
    assert len(webhook.bodies("/hook")) == 1


def test_response_p95_reads_the_folded_hours_too(engine: Engine) -> None:
    """Closed hours are folded out of the fine histogram into compact rows; the metric adds both, so it equals the
    p95 of the raw conversations in the window, per agent type and per shop."""
    from core.alerts.metrics import Scope, response_p95
    from core.models import Conversation
    from core.rollups import bucket_of, floor_hour, percentile
    from core.rollups_compact import fold_closed_hours

    seed_minimal(engine)
    with engine.begin() as conn:
        fold_closed_hours(conn)
    now = utcnow()
    scope = Scope(window_minutes=3 * 24 * 60, agent_type="rebooking")
    with read_session(engine) as s:
        rows = s.execute(select(Conversation.response_time_ms, Conversation.shop_id).where(
            Conversation.status == "completed", Conversation.response_time_ms.is_not(None),
            Conversation.agent_type == "rebooking",
            Conversation.created_at >= floor_hour(now - timedelta(minutes=scope.window_minutes)))).all()
        by_type = response_p95(s, scope, now)[0].value
        shop_1 = response_p95(s, Scope(scope.window_minutes, "rebooking", 1), now)[0].value

    def p95(values: list[int]) -> float | None:
        hist: dict[int, int] = {}
        for ms in values:
            hist[bucket_of(ms)] = hist.get(bucket_of(ms), 0) + 1
        return percentile(hist, 0.95)

    from core.models import AgentResponseBucket, AgentResponseHourlyByType

    with read_session(engine) as s:  # closed hours live in the compact rows only
        assert s.scalar(select(func.count()).select_from(AgentResponseBucket)
                        .where(AgentResponseBucket.hour < floor_hour(now))) == 0
        assert s.scalar(select(func.count()).select_from(AgentResponseHourlyByType)) > 0
    assert rows and by_type == p95([ms for ms, _ in rows])
    assert shop_1 == p95([ms for ms, shop in rows if shop == 1])



def test_a_fold_during_an_evaluation_changes_no_reading(pg_engine: Engine) -> None:
    """The probe folds while the evaluator reads: the fine rollup rows read, then moved into the compact rows before
    those were read, were counted twice (a rollback trigger could fire on a doubled count). PostgreSQL only: on
    SQLite the evaluator holds the one write lock, so no fold runs meanwhile."""
    engine = pg_engine
    seed_minimal(engine, conversations=1500, days=3)
    with engine.begin() as conn:  # failures in the hours about to be unfolded, so that a doubled count shows
        conn.execute(Conversation.__table__.update().where(Conversation.id.in_(
            select(Conversation.id).where(Conversation.created_at >= utcnow() - timedelta(hours=3))
            .order_by(Conversation.id).limit(5).scalar_subquery())).values(status="failed"))
    unfold_recent_hours(engine)
    rule(engine, key="t_failed", name="Failures", metric="failed_conversations", threshold=10_000,
         window_minutes=600)

    def reading() -> float:
        with read_session(engine) as s:
            return s.scalar(select(AlertState.value).join(AlertRule).where(AlertRule.key == "t_failed"))
    assert evaluate(engine, owner="t").evaluated
    calm = reading()
    folded = []

    def fold_midway(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if not folded and "FROM agent_metrics_hourly" in statement:  # the fine rows were read just before
            folded.append(statement)
            with engine.begin() as probe:
                fold_closed_sums(probe, before=floor_hour(utcnow()) + timedelta(hours=1))
    event.listen(engine, "before_cursor_execute", fold_midway)
    try:
        assert evaluate(engine, owner="t").evaluated
    finally:
        event.remove(engine, "before_cursor_execute", fold_midway)
    assert folded and calm >= 5 and reading() == calm


def test_the_cli_says_how_many_alerts_a_new_silence_holds(engine: Engine, capsys) -> None:  # noqa: ANN001
    rule(engine, pending_seconds=0)
    refused_read(engine)
    evaluate(engine, owner="a", now=utcnow())
    assert main(["alerts", "silence", "--match", "rule=t_unauth", "--minutes", "30", "--reason", "known"]) == 0
    assert "created; it matches 1 alert now. It lasts 30 minutes." in capsys.readouterr().out
    assert main(["alerts", "silence", "--match", "rule=t_unuath", "--minutes", "30", "--reason", "typo"]) == 0
    assert "it matches no alert now (check the matchers" in capsys.readouterr().out


def test_a_new_silence_does_not_count_a_resolved_alert(engine: Engine, capsys) -> None:  # noqa: ANN001
    """A resolved alert was counted as held ("it matches 1 alert now"): a silence holds back what the Alerts page
    lists as pending or firing (and its Silenced tile counts), nothing else."""
    from core.queries.alerts import list_alerts

    rule(engine, pending_seconds=0)
    refused_read(engine)
    evaluate(engine, owner="a", now=utcnow())
    with engine.begin() as conn:
        conn.execute(update(AlertState).values(state="resolved", resolved_at=utcnow(), firing_since=None))
    assert main(["alerts", "silence", "--match", "rule=t_unauth", "--minutes", "30", "--reason", "known"]) == 0
    assert "it matches no alert now" in capsys.readouterr().out
    with read_session(engine) as s:
        assert [a for a in list_alerts(s, actor=ENGINEER) if a["silenced_by"]] == []  # the tile's count


def test_a_shop_scoped_user_sees_only_silences_of_their_shops(engine: Engine) -> None:
    """The Chromium walkthrough: support (shop 1) was shown every silence, with matchers and reasons naming other
    shops."""
    from core.db import read_session
    from core.queries.alerts import list_silences

    seed_minimal(engine, conversations=0)
    for matchers in ("rule=error_rate", "shop=1", "shop=2", "shop!=1", "shop=~1|2"):
        alerts.create_silence(actor=ROLE_ACTORS["engineer"], matchers=matchers, minutes=60, reason=f"for {matchers}",
                              uow=UnitOfWork(engine))
    with read_session(engine) as s:
        seen = {r["matchers"] for r in list_silences(s, actor=ROLE_ACTORS["support"])}
        everything = {r["matchers"] for r in list_silences(s, actor=ROLE_ACTORS["engineer"])}
    assert seen == {"rule=error_rate", "shop=1"}
    assert everything == {"rule=error_rate", "shop=1", "shop=2", "shop!=1", "shop=~1|2"}


def test_a_removed_rules_ids_and_its_alerts_ids_are_never_given_again(engine: Engine) -> None:
    """SQLite gave the next alert the id of a removed one: an old notification's `ack 12` reached a newer alert."""
    from core.models import AlertState

    def newest_alert() -> int:
        with read_session(engine) as s:
            return s.scalar(select(func.max(AlertState.id)))

    refused_read(engine)
    first_rule = rule(engine, pending_seconds=0)
    evaluate(engine, owner="a", now=utcnow())
    removed_alert = newest_alert()
    alerts.delete_rule(actor=ENGINEER, key=RULE["key"], uow=UnitOfWork(engine))
    assert newest_alert() is None  # the rule took its alert with it
    second_rule = rule(engine, pending_seconds=0, key="t_unauth_again")
    evaluate(engine, owner="a", now=utcnow())
    assert second_rule > first_rule and newest_alert() > removed_alert
    assert main(["alerts", "ack", str(removed_alert), "--comment", "from an old notification"]) != 0


def test_a_threshold_below_zero_is_refused_where_the_metric_never_is(engine: Engine) -> None:
    """Saved, a failed-conversations rule at -5 fired at once and for ever."""
    for metric in ("failed_conversations", "error_rate", "response_p95_ms"):
        with pytest.raises(UserInputError, match=r"cannot be below 0, as the metric never is \(got -5\)"):
            rule(engine, key=f"neg_{metric}", metric=metric, threshold=-5)
    assert rule(engine, key="opt_out_drop", metric="opt_out_over_baseline_pp", op="<", threshold=-2)


def test_a_silence_or_route_on_a_label_no_alert_has_is_refused(engine: Engine) -> None:
    """`rul=opt_out_rate` and `shop=abc` were accepted and listed as active silences that could never match."""
    def silence(matchers: str) -> int:
        return alerts.create_silence(actor=ENGINEER, matchers=matchers, minutes=30, reason="maintenance",
                                     uow=UnitOfWork(engine))

    with pytest.raises(UserInputError, match="No alert has a label 'rul'; labels are "):
        silence("rul=opt_out_rate")
    with pytest.raises(UserInputError, match="shop=abc names no shop: a shop is its number, such as shop=1."):
        silence("shop=abc")
    with pytest.raises(UserInputError, match="No alert has a label 'team'"):
        alerts.save_contact_point(actor=ENGINEER, name="pager", kind="webhook", target="http://127.0.0.1:1/h",
                                  matchers=["team=payments"], uow=UnitOfWork(engine))
    rule(engine, labels={"team": "payments"})  # a rule's own label is a label alerts carry
    assert silence("team=payments, shop!=2, rule=~t_.*") > 0
    assert alerts.save_contact_point(actor=ENGINEER, name="pager", kind="webhook", target="http://127.0.0.1:1/h",
                                     matchers=["team=payments"], uow=UnitOfWork(engine)) > 0


def test_alerts_list_says_which_firing_alerts_are_silenced(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    """The console said "Firing 0 · Silenced 1" while `alerts list` showed the alert as plainly firing."""
    refused_read(engine)
    rule(engine, pending_seconds=0)
    evaluate(engine, owner="a", now=utcnow())
    sid = alerts.create_silence(actor=ENGINEER, matchers="rule=t_unauth", minutes=30, reason="maintenance",
                                uow=UnitOfWork(engine))
    capsys.readouterr()
    assert main(["alerts", "list"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert " firing " in line and line.endswith(f"(silenced by silence {sid})")
