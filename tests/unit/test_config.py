"""Settings: the checklist's variables and numbers, one clear line for a bad value, secrets masked."""
from __future__ import annotations

import subprocess
import sys

import pytest

from core.config import SettingsError, get_settings, mask_secret, reset_settings


def test_defaults_are_the_checklists_numbers() -> None:
    s = get_settings()
    assert (s.agent_max_concurrent, s.agent_retry_attempts, s.agent_timeout_seconds) == (10, 3, 30.0)
    assert (s.sc_response_p95_ms, s.sc_db_query_p95_ms, s.sc_error_rate) == (2000, 100, 0.001)
    assert (s.sc_memory_mb, s.sc_cpu_percent) == (100, 10)
    assert (s.rb_query_ms, s.rb_memory_mb, s.rb_unauthorized_max) == (200, 2048, 0)
    assert (s.breaker_failure_threshold, s.breaker_reset_seconds) == (5, 30)
    assert (s.db_retry_attempts, s.db_retry_delay_seconds, s.db_retry_backoff) == (3, 1.0, 2.0)


@pytest.mark.parametrize("var, value, named", [
    ("AGENT_MAX_CONCURRENT", "abc", "AGENT_MAX_CONCURRENT: expected a valid integer"),
    ("ENVIRONMENT", "prod", "ENVIRONMENT: expected 'development', 'staging' or 'production'"),
    ("DATABASE_URL", "not a url", "DATABASE_URL: expected a database URL"),
    ("AGENT_SYSTEM_ENABLED", "maybe", "AGENT_SYSTEM_ENABLED: expected a valid boolean"),
])
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str) -> None:
    monkeypatch.setenv(var, value)
    reset_settings()
    with pytest.raises(SettingsError) as err:
        get_settings()
    assert named in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_bad_setting_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MAX_CONCURRENT", "abc")
    proc = subprocess.run([sys.executable, "-m", "core", "status"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: AGENT_MAX_CONCURRENT: expected a valid integer (got 'abc')"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_example_cookie_key_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    reset_settings()
    with pytest.raises(SettingsError, match="COOKIE_KEY: the example key is refused"):
        get_settings()
    monkeypatch.setenv("COOKIE_KEY", "a-real-random-secret-of-some-length")
    reset_settings()
    assert get_settings().environment == "staging"


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / ".env").write_text("AGENT_MAX_CONCURRENT=7\nOPENAI_MODEL=gpt-test\n")
    monkeypatch.chdir(tmp_path)
    reset_settings()
    assert (get_settings().agent_max_concurrent, get_settings().openai_model) == (7, "gpt-test")


def test_secrets_are_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-staging-key-abcdef1234")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.staging-key-zzzz9876")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2secret@db:5432/x")
    reset_settings()
    view = get_settings().public_view()
    assert view["OPENAI_API_KEY"] == "sk-…1234"
    assert view["SENDGRID_API_KEY"].endswith("…9876")
    assert "hunter2secret" not in str(view) and "abcdef" not in str(view)
    proc = subprocess.run([sys.executable, "-m", "core", "config"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "sk-…1234" in proc.stdout
    assert "abcdef1234" not in proc.stdout and "hunter2secret" not in proc.stdout
    assert repr(get_settings().openai_api_key) == "SecretStr('**********')"


def test_mask_secret_short_and_empty() -> None:
    assert mask_secret(None) == "(not set)"
    assert mask_secret("abc") == "…"
    assert mask_secret("sk_test_staging_1234") == "sk_…1234"


def test_a_short_audit_key_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_KEY", "too-short-secret")
    reset_settings()
    with pytest.raises(SettingsError) as err:
        get_settings()
    assert str(err.value).startswith("AUDIT_KEY: expected at least 32 characters")
    assert "too-short-secret" not in str(err.value)


def test_the_attack_reviews_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found printed in clear: a probe URL's password in `config`, curl's -u user:password in the deploy hook's
    description, a token in a log line kept as checklist evidence, a bare-token user name in a database error."""
    from core.alerts.delivery import mask_webhook
    from core.config import mask_command, mask_secrets_in_text
    from core.errors import first_line

    monkeypatch.setenv("CHECKLIST_HOST_PROBE", "http://u:s3cr3t@127.0.0.1:1/?k=s3cr3t")
    reset_settings()
    assert "s3cr3t" not in str(get_settings().public_view())
    for command in ("curl -u admin:s3cr3t http://h/x", "curl --user=admin:s3cr3t http://h/x",
                    "curl -H 'Authorization: Bearer s3cr3t' http://h/x"):
        assert "s3cr3t" not in mask_command(command), mask_command(command)
    assert mask_command("curl -u admin:s3cr3t http://h/x") == "curl -u admin:*** http://h/x"
    line = "2026-12-06 10:00:00 ERROR api: token=bbat_abcdefghijklmnop password=hunter2 key: sk-abcdefghijkl12"
    assert mask_secrets_in_text(line) == "2026-12-06 10:00:00 ERROR api: token=*** password=*** key: sk-***"
    assert "s3cr3t" not in mask_webhook("s3cr3t-not-a-url")
    err = Exception('connection to server failed: FATAL:  role "s3cr3t" does not exist')
    assert "s3cr3t" not in first_line(err)


def test_a_postgres_url_in_libpqs_spelling_is_a_postgresql_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """postgres://… was refused as "expected a PostgreSQL or SQLite URL"."""
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db:5432/x")
    reset_settings()
    assert get_settings().database_url == "postgresql://app:pw@db:5432/x"
    monkeypatch.setenv("DATABASE_URL", "mysql://app:pw@db/x")
    reset_settings()
    with pytest.raises(SettingsError, match=r"a PostgreSQL \(postgresql://\) or SQLite \(sqlite:///path\) URL"):
        get_settings()


def test_an_empty_backup_dir_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """BACKUP_DIR="" wrote backups into the folder the command happened to run from."""
    monkeypatch.setenv("BACKUP_DIR", "")
    reset_settings()
    with pytest.raises(SettingsError, match="BACKUP_DIR: expected a folder for the backups, such as var/backups"):
        get_settings()


@pytest.mark.parametrize("dsn", ["https://s3cretkey@sentry.io", "not-a-dsn-s3cretkey"])
def test_a_sentry_dsn_sentry_cannot_read_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    """A DSN without a project id ended `worker`, `api` and `alerts run` in a traceback (BadDsn) that `config`
    had accepted (a CLI review)."""
    monkeypatch.setenv("SENTRY_DSN", dsn)
    reset_settings()
    with pytest.raises(SettingsError) as err:
        get_settings()
    assert str(err.value) == "SENTRY_DSN: expected a Sentry DSN such as https://KEY@o0.ingest.sentry.io/PROJECT_ID"
    monkeypatch.setenv("SENTRY_DSN", "https://s3cretkey@127.0.0.1:1/42")
    reset_settings()
    assert get_settings().sentry_dsn is not None
