"""The production image: hadolint-clean, multi-stage, slim, non-root, JSON commands, a health check, a lean context."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, smoke

HADOLINT = Path(sys.executable).with_name("hadolint")
SMOKE = smoke()
STAGES = SMOKE.parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))
RUNTIME = STAGES[-1]
ROLES = {"console", "api", "worker", "probe", "alerts", "migrate"}


def hadolint(path: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """hadolint at its strictest: every level fails, no inline ignores, and no config file but ours."""
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n")
    return subprocess.run([str(HADOLINT), "--config", str(config), "--no-color", "--disable-ignore-pragma", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    result = hadolint(ROOT / "Dockerfile", tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    result = hadolint(bad, tmp_path)
    assert result.returncode == 1
    assert {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


def runtime_runs() -> list[str]:
    return [args for keyword, args in RUNTIME.instructions if keyword == "RUN"]


def test_wheels_are_built_in_a_builder_stage_and_the_runtime_stage_is_slim() -> None:
    assert len(STAGES) >= 2
    assert any("pip wheel" in args for stage in STAGES[:-1] for keyword, args in stage.instructions if keyword == "RUN")
    assert "slim" in RUNTIME.base
    installs = [r for r in runtime_runs() if "pip install" in r]
    assert len(installs) == 1 and "--no-index" in installs[0], "the runtime installs only the builder's wheels"
    assert not [r for r in runtime_runs() if re.search(r"\b(apt-get|apt|apk)\b.*\binstall\b", r)], \
        "the runtime stage installs no system packages (compilers stay in the builder)"


def test_the_image_installs_the_runtime_requirements_only(tmp_path: Path) -> None:
    image = SMOKE.replay(STAGES, ROOT, tmp_path)
    assert image.requirements is not None and image.requirements.name == "requirements.txt"
    assert image.requirements.read_bytes() == (ROOT / "requirements.txt").read_bytes()


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [args for keyword, args in RUNTIME.instructions if keyword == "USER"]
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit())


def test_entrypoint_cmd_and_healthcheck_are_json_and_name_roles(tmp_path: Path) -> None:
    image = SMOKE.replay(STAGES, ROOT, tmp_path)  # refuses the shell form of each
    assert image.entrypoint == ["/app/scripts/docker-entrypoint.sh"]
    assert image.cmd == ["console"]
    assert image.healthcheck == [*image.entrypoint, "health"]
    assert image.path(image.entrypoint[0]).stat().st_mode & 0o111, "the entrypoint is executable"


def test_the_entrypoint_handles_every_role() -> None:
    script = (ROOT / "scripts" / "docker-entrypoint.sh").read_text(encoding="utf-8")
    labels = set(re.findall(r"^\s+([a-z|]+)\)", script, flags=re.M))
    assert ROLES | {"health"} <= labels
    migrate_line = next(line for line in script.splitlines() if line.strip().startswith("migrate)"))
    assert "db setup" in migrate_line
    assert "db setup" not in script.replace(migrate_line, ""), "only the migrate role migrates"


def test_nothing_from_tests_bench_or_var_is_copied(tmp_path: Path) -> None:
    image = SMOKE.replay(STAGES, ROOT, tmp_path)
    copied = {p.relative_to(image.path(image.workdir)).parts[0] for p in image.path(image.workdir).rglob("*")
              if p.is_file()}
    assert {"core", "dashboard", "pages"} <= copied
    assert not copied & {"tests", "bench", "var"}
    scripts = {p.name for p in image.path("/app/scripts").iterdir()}
    assert scripts == {"docker-entrypoint.sh", "healthcheck.py"}
    assert not list(image.root.rglob("__pycache__")), "bytecode from the work tree stays out"


@pytest.mark.parametrize("path", ["tests/conftest.py", "bench/common.py", "var/agentops.db", ".env", ".git/HEAD",
                                  ".streamlit/secrets.toml", ".venv/bin/python", "core/__pycache__/db.cpython-311.pyc",
                                  "requirements-dev.txt"])
def test_the_build_context_leaves_out(path: str) -> None:
    assert SMOKE.ignored(path, SMOKE.load_dockerignore(ROOT))


@pytest.mark.parametrize("path", ["core/db.py", "core/migrations/versions/20261125_0001_agent_system_schema.py",
                                  "pages/health.py", ".streamlit/config.toml", "requirements.txt"])
def test_the_build_context_keeps(path: str) -> None:
    assert not SMOKE.ignored(path, SMOKE.load_dockerignore(ROOT))
