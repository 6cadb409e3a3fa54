"""compose.yaml: the whole staging stack, valid against the Compose specification, secrets from an uncommitted .env."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import ROOT

COMPOSE = ROOT / "compose.yaml"
STACK: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # resolves the x-agentops anchor
SERVICES = STACK["services"]
APP_ROLES = ["console", "api", "worker", "probe", "alerts"]


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_wrong_condition(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("service_completed_successfully", "service_finished"))
    result = check_jsonschema(broken)
    assert result.returncode == 1
    assert "'service_finished' is not one of" in result.stdout


def test_postgres_keeps_its_data_in_a_volume_and_reports_health() -> None:
    db = SERVICES["db"]
    assert db["image"].startswith("postgres:")
    assert any(v.endswith(":/var/lib/postgresql/data") and v.split(":")[0] in STACK["volumes"] for v in db["volumes"])
    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_migrations_run_once_and_every_role_waits_for_them() -> None:
    migrate = SERVICES["migrate"]
    assert (migrate["command"], migrate["restart"]) == (["migrate"], "no")
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for role in APP_ROLES:
        service = SERVICES[role]
        assert service["command"] == [role]
        assert service["image"] == migrate["image"], f"{role} runs the one image"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", role


def test_two_workers_that_scale() -> None:
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert "container_name" not in worker and "ports" not in worker, "`--scale worker=N` needs neither"


def test_the_api_shares_its_rate_limit_through_redis() -> None:
    redis, api = SERVICES["redis"], SERVICES["api"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert api["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"


def test_secrets_come_from_an_env_file_that_is_not_committed() -> None:
    for role in ["migrate", *APP_ROLES]:
        assert SERVICES[role]["env_file"] == [{"path": ".env", "required": True}], role
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored"
    inline = [f"{name}: {key}" for name, service in SERVICES.items()
              for key, value in (service.get("environment") or {}).items()
              if re.search(r"KEY|SECRET|PASSWORD|TOKEN|DSN", key) and not str(value).startswith("${")]
    assert not inline, f"secrets written into compose.yaml: {inline}"
    assert "${POSTGRES_PASSWORD:?" in SERVICES["api"]["environment"]["DATABASE_URL"]


@pytest.mark.parametrize("role", ["console", "api"])
def test_published_ports_stay_on_loopback_for_the_tls_proxy(role: str) -> None:
    assert all(p.startswith("127.0.0.1:") for p in SERVICES[role]["ports"])
