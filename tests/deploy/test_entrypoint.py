"""The image's entrypoint and HEALTHCHECK, run as the container runs them (from the work tree, no engine)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.deploy.support import ROOT, load_script
from tests.support.net import free_port

ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"
HEALTHCHECK = load_script(ROOT / "scripts" / "healthcheck.py")


def entrypoint(*args: str, run_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "AGENTOPS_RUN_DIR": str(run_dir),
            "PYTHONPATH": str(ROOT), "HOME": str(run_dir)}
    return subprocess.run([str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_any_other_command_runs_as_given(tmp_path: Path) -> None:
    result = entrypoint("python", "-c", "import os; print(os.getcwd())", run_dir=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, str(ROOT))


def test_health_of_a_role_without_an_endpoint_passes_while_it_runs(tmp_path: Path) -> None:
    (tmp_path / "agentops-role").write_text("probe\n")
    result = entrypoint("health", run_dir=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "probe: no health endpoint; healthy while the process runs"


def test_health_of_a_console_that_does_not_answer_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "agentops-role").write_text("console\n")
    port = free_port()
    result = entrypoint("health", run_dir=tmp_path, PORT=str(port))
    assert result.returncode == 1
    assert result.stdout.startswith(f"console: UNHEALTHY (http://127.0.0.1:{port}/_stcore/health: ")
    assert len(result.stdout.strip().splitlines()) == 1 and result.stderr == ""


def test_health_of_a_worker_without_a_heartbeat_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "agentops-role").write_text("worker\n")
    result = entrypoint("health", run_dir=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}")
    assert result.returncode == 1
    assert result.stdout.startswith("worker: UNHEALTHY (cannot read worker heartbeats: ")
    assert len(result.stdout.strip().splitlines()) == 1 and result.stderr == ""


def test_console_health_follows_the_proxy_base_path() -> None:
    assert HEALTHCHECK.console_health_url({}) == "http://127.0.0.1:8501/_stcore/health"
    assert HEALTHCHECK.console_health_url({"PORT": "9000", "STREAMLIT_SERVER_BASE_URL_PATH": "/agentops/"}) == \
        "http://127.0.0.1:9000/agentops/_stcore/health"
    assert HEALTHCHECK.api_health_url({"API_PORT": "9001"}) == "http://127.0.0.1:9001/health"
