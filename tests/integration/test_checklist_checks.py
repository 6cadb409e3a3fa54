"""Each automated check that reads configuration or the database: a passing and a failing case, both backends."""
from __future__ import annotations

import gzip
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from core.auth import Actor, Role
from core.backups import write_backup
from core.checklist.catalogue import BY_ID
from core.checklist.checks import access, database, integration, logs, monitoring, rollback, settings, windows
from core.checklist.checks.impact import check_main_app_impact
from core.checklist.runner import run_check
from core.config import get_settings, mask_url, reset_settings
from core.db import make_engine, write_bind
from core.migrate import alembic_config
from core.models import agent_tables, utcnow
from core.rollups import record_db_time
from core.services import controls
from core.services.schema import cleanup_agent_tables
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from tests.support.checklist import ADMIN, beat, context
from tests.support.data import seed_minimal

DOWN = "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"


def env(monkeypatch: pytest.MonkeyPatch, **values: object) -> None:
    for key, value in values.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, str(value))
    reset_settings()


def test_database_url_is_postgresql_outside_development(engine: Engine, backend: str, monkeypatch) -> None:
    assert settings.check_database_url(context(engine)).status == ("pass" if backend == "postgresql" else "warn")
    env(monkeypatch, ENVIRONMENT="staging", COOKIE_KEY="a-long-random-cookie-key-for-staging-tests")
    out = settings.check_database_url(context(engine))
    assert out.status == ("pass" if backend == "postgresql" else "fail")
    assert out.value == mask_url(get_settings().database_url)  # masked, never the password


def test_agent_variables(engine: Engine, monkeypatch) -> None:
    env(monkeypatch, AGENT_SYSTEM_ENABLED="true", AGENT_LOG_LEVEL="INFO", AGENT_MAX_CONCURRENT=10,
        AGENT_RETRY_ATTEMPTS=3, AGENT_TIMEOUT_SECONDS=30)
    assert settings.check_agent_variables(context(engine)).status == "pass"
    env(monkeypatch, AGENT_SYSTEM_ENABLED="false")
    out = settings.check_agent_variables(context(engine))
    assert out.status == "fail" and "AGENT_SYSTEM_ENABLED=false" in out.detail


def test_api_keys_present_valid_and_masked(engine: Engine, monkeypatch) -> None:
    env(monkeypatch, OPENAI_API_KEY="sk-staging-key-123456", STRIPE_SECRET_KEY="sk_test_staging_abcdef",
        SENDGRID_API_KEY="SG.staging-key-7890")
    out = settings.check_api_keys(context(engine))
    assert out.status == "pass"
    assert "123456" not in str(out.value) and out.value["OPENAI_API_KEY"].endswith("3456")
    env(monkeypatch, STRIPE_SECRET_KEY="pk_wrong_kind_of_key", SENDGRID_API_KEY=None)
    out = settings.check_api_keys(context(engine))
    assert out.status == "fail"
    assert "STRIPE_SECRET_KEY does not start with" in out.detail and "SENDGRID_API_KEY is not set" in out.detail


def test_retries_breakers_and_deploy_hook(engine: Engine, monkeypatch) -> None:
    assert settings.check_db_retries(context(engine)).status == "pass"
    env(monkeypatch, DB_RETRY_ATTEMPTS=1)
    assert settings.check_db_retries(context(engine)).status == "fail"
    beat(engine, "w-closed")
    assert settings.check_breakers(context(engine)).status == "pass"
    beat(engine, "w-open", breaker="open")
    out = settings.check_breakers(context(engine))
    assert out.status == "fail" and "w-open" in out.detail
    assert settings.check_deploy_hook(context(engine)).status == "fail"
    env(monkeypatch, DEPLOY_HOOK_COMMAND="./deploy-staging.sh --token=s3cret")
    out = settings.check_deploy_hook(context(engine))
    assert out.status == "pass" and "s3cret" not in out.value


def test_migrations_at_head_and_the_seed_table_query(engine: Engine) -> None:
    assert database.check_migrations_at_head(context(engine)).status == "pass"
    found = database.check_agent_tables(context(engine))
    wanted = len([t for t in agent_tables() if t.startswith("agent")])
    # The count shown is the count the sentence speaks of (it said "47 · all 37 agent tables present": the query
    # lists PostgreSQL's monthly partitions too).
    assert found.status == "pass" and found.value == wanted
    assert found.detail.startswith(f"all {wanted} agent tables present")
    assert database.check_tables_accessible(context(engine)).status == "pass"
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE agent_messages"))
    out = database.check_agent_tables(context(engine))
    assert out.status == "fail" and "agent_messages" in out.detail
    assert database.check_tables_accessible(context(engine)).status == "fail"
    command.stamp(alembic_config(engine), "0005")
    try:
        out = database.check_migrations_at_head(context(engine))
        assert out.status == "fail" and "0005" in out.detail
    finally:  # the PostgreSQL database is shared by the session's tests: put the stamp back
        command.stamp(alembic_config(engine), "head")


def test_connections_and_pool(engine: Engine) -> None:
    for check in (database.check_app_connection, database.check_connections_stable, database.check_connection_pool):
        assert check(context(engine)).status == "pass", check.__name__


def test_a_database_that_cannot_be_reached_fails_with_the_reason(engine: Engine) -> None:
    down = make_engine(DOWN)
    try:
        for item_id in ("db.app_connection", "immediate.db_stable", "db.verify_tables"):
            result = run_check(BY_ID[item_id], context(down))
            assert result.status == "fail", item_id
            assert result.evidence["detail"].startswith("The database cannot be reached (")
            assert result.evidence["duration_ms"] >= 0 and result.evidence["at"]
    finally:
        down.dispose()


def test_client_access_rule_holds_and_a_regression_fails(engine: Engine, monkeypatch) -> None:
    seed_minimal(engine)
    out = access.check_client_access(context(engine))
    assert out.status == "pass" and out.value == {"own shop read": True, "other shop refused": True}
    monkeypatch.setattr(Actor, "sees_shop", lambda self, shop_id: True)  # the scope rule broken
    assert access.check_client_access(context(engine)).status == "fail"


def test_client_access_needs_two_shops_with_conversations(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    out = access.check_client_access(context(engine))
    assert out.status == "fail" and "two shops" in out.detail


def test_unauthorized_access_and_rollback_triggers(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    for check in (access.check_unauthorized_access, access.check_trigger_query_time, access.check_trigger_memory):
        assert check(context(engine)).status == "pass", check.__name__
    record_refusal(actor=Actor("otto", role=Role.SHOP_OWNER, shop_ids=frozenset({1})), action="conversation.read", target="conversation 9",
                   reason="shop 2", uow=UnitOfWork(engine))
    out = access.check_unauthorized_access(context(engine))
    assert out.status == "fail" and "otto" in out.detail
    with write_bind(engine).begin() as conn:
        record_db_time(conn, source="probe", samples_ms=[900.0] * 20, at=utcnow())
    assert access.check_trigger_query_time(context(engine)).status == "fail"
    beat(engine, "w-big", rss_mb=3000)
    assert access.check_trigger_memory(context(engine)).status == "fail"


def test_conversations_saved_and_failures_recorded(engine: Engine) -> None:
    seed_minimal(engine)
    assert integration.check_conversations_saved(context(engine)).status == "pass"
    assert integration.check_failures_recorded(context(engine)).status == "pass"


def test_nothing_saved_in_an_empty_system(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    out = integration.check_conversations_saved(context(engine))
    assert out.status == "fail" and "no completed conversation" in out.detail


def test_metrics_recorded(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    assert monitoring.check_metrics_recorded(context(engine)).status == "warn"
    seed_minimal(engine)
    assert monitoring.check_metrics_recorded(context(engine)).status == "pass"


def test_alerting_configured_needs_the_failed_conversations_rule_a_contact_and_an_evaluator(engine: Engine,
                                                                                              monkeypatch) -> None:
    from core.alerts.evaluator import acquire_lease
    from core.services import alerts
    from core.uow import UnitOfWork

    assert "no enabled rule on failed conversations" in monitoring.check_alerting_configured(context(engine)).detail
    alerts.install_default_rules(actor=ADMIN, uow=UnitOfWork(engine))
    assert "no contact point" in monitoring.check_alerting_configured(context(engine)).detail
    env(monkeypatch, ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook")
    idle = monitoring.check_alerting_configured(context(engine))
    assert idle.status == "warn" and idle.value["contact_points"] == ["webhook"] and not idle.value["evaluator_running"]
    assert acquire_lease(engine, owner="evaluator-1", seconds=60)
    assert monitoring.check_alerting_configured(context(engine)).status == "pass"


def test_alerting_needs_rules_and_a_contact_point_that_receives_the_test(engine: Engine, monkeypatch) -> None:
    from core.services import alerts
    from core.uow import UnitOfWork
    from tests.support.fake_receiver import FakeReceiver

    no_rules = monitoring.check_alerting(context(engine))
    assert no_rules.status == "fail" and "no alert rule" in no_rules.detail
    alerts.install_default_rules(actor=ADMIN, uow=UnitOfWork(engine))
    nobody = monitoring.check_alerting(context(engine))
    assert nobody.status == "fail" and "No contact point" in nobody.detail
    env(monkeypatch, ALERT_RETRY_BASE_SECONDS=0, ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook?token=s3cret")
    unreachable = monitoring.check_alerting(context(engine))
    assert unreachable.status == "fail" and "not delivered to webhook" in unreachable.detail
    assert "s3cret" not in str(unreachable.evidence())
    server = FakeReceiver().start()
    try:
        env(monkeypatch, ALERT_RETRY_BASE_SECONDS=0, ALERT_WEBHOOK_URL=server.url + "/hook")
        out = monitoring.check_alerting(context(engine))
        assert out.status == "pass" and out.value["deliveries"][0] == {
            "contact": "webhook", "delivered": True, "attempts": 1, "error": None}
        assert len(server.bodies("/hook")) == 1
    finally:
        server.stop()


def test_log_scan_shows_the_matching_lines_masked(engine: Engine, monkeypatch, tmp_path: Path) -> None:
    assert logs.check_logs(context(engine)).status == "warn"  # nothing configured, no var/*.log here
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "worker.log").write_text("2026-01-01 10:00:00,000 CRITICAL core.worker: pool exhausted\n")
    own = logs.check_logs(context(engine))  # the processes' own logs (tests run in tmp_path)
    line = "worker.log: 2026-01-01 10:00:00,000 CRITICAL core.worker: pool exhausted"
    assert own.status == "fail" and own.lines == (line,)
    log = tmp_path / "application.log"
    log.write_text("2026-01-01 10:00:00,000 INFO core.api: started\n2026-01-01 10:00:01,000 INFO ok\n")
    env(monkeypatch, CHECKLIST_LOG_FILE=str(log))
    assert logs.check_logs(context(engine)).status == "pass"
    with log.open("a") as fh:
        fh.write("2026-01-01 10:00:02,000 ERROR core.worker: call to https://u:hunter2@model.local/v1 failed\n")
    out = logs.check_logs(context(engine))
    assert out.status == "fail" and len(out.lines) == 1
    assert out.lines[0].startswith("application.log: ") and "hunter2" not in out.lines[0]
    later = utcnow() + timedelta(days=3650)
    assert logs.check_logs(context(engine, deployed_at=later)).status == "pass"  # lines before deployment skipped


def test_backup_readable_and_restorable(engine: Engine, monkeypatch, tmp_path: Path) -> None:
    seed_minimal(engine)
    directory = tmp_path / "backups"
    env(monkeypatch, BACKUP_DIR=str(directory))
    out = rollback.check_backup_restorable(context(engine))
    assert out.status == "fail" and "no backup" in out.detail
    path, counts = write_backup(engine, directory)
    out = rollback.check_backup_restorable(context(engine))
    assert out.status == "pass" and out.value["rows"] == sum(counts.values())
    damaged = directory / "agent-tables-99999999T999999999999.jsonl.gz"
    damaged.write_bytes(gzip.compress(path.read_bytes()[:200]))
    assert rollback.check_backup_restorable(context(engine)).status == "fail"


def _agent_table_counts(engine: Engine) -> dict[str, int]:
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in agent_tables() if t in present}


def test_backup_restorable_leaves_the_deployment_as_it_was(engine: Engine, monkeypatch, tmp_path: Path) -> None:
    seed_minimal(engine)
    env(monkeypatch, BACKUP_DIR=str(tmp_path / "backups"))
    _, written = write_backup(engine, tmp_path / "backups")
    before = _agent_table_counts(engine)
    for _ in range(2):  # a second run meets no scratch table left on a pooled connection
        out = rollback.check_backup_restorable(context(engine))
        assert out.status == "pass" and out.value["rows"] == sum(written.values())
        assert "temporary copies" in out.detail
    assert _agent_table_counts(engine) == before
    cleanup_agent_tables(actor=ADMIN, uow=UnitOfWork(engine), backup_dir=tmp_path / "old")
    # After the cleanup, when a database rollback needs it, the check still restores (into its copies) and the
    # dropped tables stay dropped.
    assert rollback.check_backup_restorable(context(engine)).status == "pass"
    assert not set(agent_tables()) & set(inspect(engine).get_table_names())


def test_backup_restorable_is_judged_by_the_deployments_own_database(pg_engine: Engine, monkeypatch,
                                                                       tmp_path: Path, sqlite_template: Path) -> None:
    """A backup whose cost does not fit numeric(12, 6): SQLite stores it, PostgreSQL refuses it. The check used to
    restore into a scratch SQLite file, and passed a backup the PostgreSQL restore would then refuse."""
    shutil.copy(sqlite_template, tmp_path / "other.db")
    lite = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        seed_minimal(lite)
        with lite.begin() as conn:
            conn.execute(text("UPDATE agent_conversations SET cost_usd = 12345678.5 "
                              "WHERE id = (SELECT min(id) FROM agent_conversations)"))
        write_backup(lite, tmp_path / "backups")
        env(monkeypatch, BACKUP_DIR=str(tmp_path / "backups"))
        assert rollback.check_backup_restorable(context(lite)).status == "pass"
        out = rollback.check_backup_restorable(context(pg_engine))
        assert out.status == "fail" and "rows do not fit the tables" in out.detail
    finally:
        lite.dispose()
    assert _agent_table_counts(pg_engine)["agent_conversations"] == 0  # the real (empty) table was not written


def test_main_application_impact_against_its_baseline(engine: Engine, monkeypatch) -> None:
    seed_minimal(engine, conversations=0)
    assert check_main_app_impact(context(engine)).status == "fail"  # no probe configured
    env(monkeypatch, CHECKLIST_HOST_PROBE="SELECT count(*) FROM shops", SC_MAIN_IMPACT_PERCENT=1000)
    base = check_main_app_impact(context(engine))
    assert base.status == "pass" and base.value["agents"] == "off"
    controls.set_activation(actor=ADMIN, mode="full", reason="test", uow=UnitOfWork(engine))
    assert check_main_app_impact(context(engine)).status == "warn"  # running, but no baseline recorded
    history = lambda _item: [{"evidence": base.evidence()}]
    out = check_main_app_impact(context(engine, history=history))
    assert out.status == "pass" and out.value["baseline_ms"] == base.value["median_ms"]
    env(monkeypatch, SC_MAIN_IMPACT_PERCENT=-100)  # no slowdown can be under a negative limit
    assert check_main_app_impact(context(engine, history=history)).status == "fail"


def test_success_criteria_from_the_rollups(engine: Engine, monkeypatch) -> None:
    seed_minimal(engine)  # the seed fails about 3 % of conversations
    out = windows.check_sc_error_rate(context(engine))
    assert out.status == "fail"
    env(monkeypatch, SC_ERROR_RATE=0.5)
    assert windows.check_sc_error_rate(context(engine)).status == "pass"
    assert windows.check_sc_memory(context(engine)).status == "warn"  # no worker
    beat(engine, rss_mb=100, rss_start_mb=90, cpu=3)
    assert windows.check_sc_memory(context(engine)).status == "pass"
    assert windows.check_sc_cpu(context(engine)).status == "pass"
    beat(engine, "w-hot", rss_mb=400, rss_start_mb=90, cpu=50)
    assert windows.check_sc_memory(context(engine)).status == "fail"
    assert windows.check_memory_growth(context(engine)).status == "fail"
    assert windows.check_sc_cpu(context(engine)).status == "fail"
    assert windows.check_resources(context(engine)).status == "fail"
