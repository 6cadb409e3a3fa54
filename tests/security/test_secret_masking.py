"""9.1 and 9.2: credentials in URLs never reach an audit record, a run's details, a probe row or an error message."""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Engine, insert, select

from core.config import mask_url
from core.db import read_session
from core.models import AuditRecord, HealthProbe, RollbackRun, utcnow
from core.services import rollbacks
from core.uow import UnitOfWork
from tests.dashboard.conftest import open_app
from tests.support.data import ROLE_ACTORS

SECRETS = ("hunter2", "T0KEN-VALUE", "s3cr3t")


@pytest.mark.parametrize("url, masked", [
    ("http://user:hunter2@hooks.example/hook?token=T0KEN-VALUE&x=1", "http://user:***@hooks.example/hook?token=***&x=***"),
    ("https://T0KEN-VALUE@hooks.example/deploy", "https://***@hooks.example/deploy"),
    ("postgresql://app:hunter2@db:5432/agentops", "postgresql://app:***@db:5432/agentops"),
    ("postgresql://u:s3cr3t@host:notaport/db", "postgresql://u:***@host:notaport/db"),
    ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
    ("sqlite:///var/agentops.db", "sqlite:///var/agentops.db"),
    ("http://127.0.0.1:8000/health", "http://127.0.0.1:8000/health"),
    ("u:hunter2@host/db", "u:***@host/db"),
    # No "://": the userinfo was taken for part of the path and shown whole (the API and CLI attack).
    ("postgres//admin:hunter2@db:5432/x", "postgres//admin:***@db:5432/x"),
    ("postgresql:/admin:hunter2@db/x", "postgresql:/admin:***@db/x"),
    ("http:/deployer:hunter2@127.0.0.1:1/hook", "http:/deployer:***@127.0.0.1:1/hook"),
    ("sqlite://T0KEN-VALUE@/x.db", "sqlite://***@/x.db"),
])
def test_mask_url_hides_userinfo_and_every_query_value(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_full_rollback_stores_only_the_masked_hook(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import reset_settings

    # Nothing listens on port 9: the call fails fast, and what was stored about it is what matters.
    monkeypatch.setenv("DEPLOY_HOOK_URL", "http://deployer:hunter2@127.0.0.1:9/hook?token=T0KEN-VALUE")
    reset_settings()
    run = rollbacks.run_full_rollback(actor=ROLE_ACTORS["engineer"], reason="bad release", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        stored = [str(r.after) + r.target + r.reason for r in s.scalars(select(AuditRecord))]
        stored += [str(r.details) + str(r.outcome) for r in s.scalars(select(RollbackRun))]
    shown = rollbacks.describe_deploy_hook() + str(run.details) + str(run.outcome)
    for text in (*stored, shown):
        assert not any(secret in text for secret in SECRETS), text
    assert "http://deployer:***@127.0.0.1:9/hook?token=***" in run.details["hook"]


def test_the_deploy_hooks_output_is_stored_masked(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The hook's last line goes into the run and the append-only audit trail: only URLs were masked in it, so a
    hook that echoed its bearer token or a token=… stored the secret for good."""
    from core.config import reset_settings

    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\necho 'Authorization: Bearer T0KEN-VALUE token=hunter2 release r41'\n")
    script.chmod(0o755)
    monkeypatch.setenv("DEPLOY_HOOK_COMMAND", str(script))
    reset_settings()
    run = rollbacks.run_full_rollback(actor=ROLE_ACTORS["engineer"], reason="bad release", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        stored = [str(r.after) for r in s.scalars(select(AuditRecord))]
        stored += [str(r.details) + str(r.outcome) for r in s.scalars(select(RollbackRun))]
    assert run.state == "done" and "Bearer ***" in run.outcome and "token=***" in run.outcome
    for text in (*stored, str(run.outcome)):
        assert not any(secret in text for secret in SECRETS), text


def test_probe_rows_store_the_masked_url(engine: Engine) -> None:
    with engine.begin() as conn:  # the prober writes its rows with a Core insert, like this
        conn.execute(insert(HealthProbe), [{"url": "https://probe:hunter2@api.example/health?key=T0KEN-VALUE",
                                            "checked_at": utcnow(), "ok": True}])
    with read_session(engine) as s:
        assert s.scalars(select(HealthProbe.url)).one() == "https://probe:***@api.example/health?key=***"


def test_config_masks_probe_urls_and_hook_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import get_settings, reset_settings

    monkeypatch.setenv("HEALTH_PROBE_URLS", "https://a:hunter2@x/health,https://y/ready?token=T0KEN-VALUE")
    monkeypatch.setenv("DEPLOY_HOOK_COMMAND", "deploy.sh --token T0KEN-VALUE --password=s3cr3t --env staging")
    reset_settings()
    view = str(get_settings().public_view())
    assert not any(secret in view for secret in SECRETS), view
    assert "--env staging" in view


def test_malformed_database_url_never_echoes_its_password(tmp_path) -> None:
    env = {"DATABASE_URL": "postgresql://u:s3cr3t@host:notaport/db", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "core", "status"], capture_output=True, text=True, env=env,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: DATABASE_URL: expected a database URL")
    assert "s3cr3t" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("url", ["postgresql+asyncpg://u:s3cr3t@host/db", "postgresql+foo://u:s3cr3t@host/db",
                                 "sqlite://s3cr3t@/x.db", "postgres//admin:s3cr3t@db:5432/x"])
def test_a_database_url_with_another_driver_or_no_scheme_is_one_masked_sentence(url: str, tmp_path) -> None:
    """A driver that is not installed, or a SQLite URL with a user name, ended in a traceback (exit 1), and
    SQLAlchemy's message about the SQLite URL repeated it whole; a URL without "://" was shown with its password."""
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "core", "status"], capture_output=True, text=True, env=env,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: DATABASE_URL: expected ") and len(proc.stderr.strip().splitlines()) == 1
    assert "s3cr3t" not in proc.stderr + proc.stdout


def test_malformed_database_url_on_the_console_before_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import reset_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://u:s3cr3t@host:notaport/db")
    reset_settings()
    at = open_app()
    assert not at.exception
    shown = "\n".join(e.value for e in at.error)
    assert "The console cannot start: DATABASE_URL" in shown and "s3cr3t" not in shown
