"""`make run` (scripts/run.sh) as a new user starts it: PORT and API_PORT chosen, the prober checks that API."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.alerts.rules import DEFAULT_RULES
from core.config import reset_settings
from core.db import dispose_engines, make_engine, read_session
from core.models import AlertRule, HealthProbe
from tests.support.net import free_port
from tests.support.workers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
def started(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """scripts/run.sh on a migrated SQLite file (marked as seeded, so it starts at once), on free ports."""
    db = tmp_path / "agentops.db"
    shutil.copy(sqlite_template, db)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".seeded").touch()
    ports = {"PORT": free_port(), "API_PORT": free_port()}
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "RUN_DIR": str(run_dir), "BCRYPT_ROUNDS": "4",
           "HEALTH_PROBE_URLS": "", **{k: str(v) for k, v in ports.items()}}
    proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(tmp_path / "run.log", "w"), stderr=subprocess.STDOUT)
    yield {"db": db, "run_dir": run_dir, "proc": proc, **ports}
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    dispose_engines()
    reset_settings()


def test_the_prober_checks_the_api_that_make_run_started(started: dict) -> None:
    api = f"http://127.0.0.1:{started['API_PORT']}"
    wait_for(lambda: _answers(f"http://127.0.0.1:{started['PORT']}/_stcore/health"), timeout=60, what="the console")
    wait_for(lambda: _answers(f"{api}/health"), timeout=60, what="the API")
    engine = make_engine(f"sqlite:///{started['db']}")

    def probed() -> set[tuple[str, bool]]:
        with read_session(engine) as s:
            return {(url, ok) for url, ok in s.execute(select(HealthProbe.url, HealthProbe.ok))}

    wait_for(lambda: len(probed()) >= 2, timeout=60, what="the first probe results")
    assert {url for url, _ in probed()} == {f"{api}/health", f"{api}/api/v2/agents/health"}
    assert (f"{api}/health", True) in probed()
    for name in ("worker", "api", "probe", "traffic", "alerts"):
        assert (started["run_dir"] / f"{name}.log").exists(), f"{name} logs to RUN_DIR/{name}.log"

    def rules() -> int:
        with read_session(engine) as s:
            return len(s.scalars(select(AlertRule.id)).all())

    wait_for(lambda: rules() == len(DEFAULT_RULES), timeout=60, what="the alert evaluator's default rules")
    engine.dispose()
