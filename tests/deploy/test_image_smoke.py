"""scripts/image-smoke: the image's own steps work without a container engine, and a forgotten file fails them.

Both tests run on one xdist worker (pyproject: --dist loadgroup) so the second reuses the first's fresh environment.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL
from tests.deploy.support import ROOT, SMOKE, smoke

pytestmark = pytest.mark.xdist_group("image-smoke")
STEPS = ["copy", "python", "install", "console settings", "migrate", "pages", "migrate postgresql",
         "api healthcheck", "console healthcheck", "worker healthcheck", "cross-origin", "stop"]


def run_smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SMOKE), *args], capture_output=True, text=True, timeout=400, cwd=ROOT)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image-smoke") / "venv"


@pytest.fixture(scope="module")
def passed(venv: Path) -> subprocess.CompletedProcess[str]:
    return run_smoke("--venv", str(venv), "--postgres", PG_ADMIN_URL)


def test_the_image_steps_work_from_a_fresh_environment(passed: subprocess.CompletedProcess[str]) -> None:
    assert passed.returncode == 0, passed.stdout + passed.stderr
    done = [line.split("(")[0].removeprefix("  ok  ").strip() for line in passed.stdout.splitlines()
            if line.startswith("  ok  ")]
    assert [s for s in STEPS if s in done] == STEPS, passed.stdout
    assert "installed requirements.txt into a fresh virtual environment" in passed.stdout
    assert "every console page renders for an admin" in passed.stdout


def test_a_file_the_image_forgot_to_copy_fails_it(passed: subprocess.CompletedProcess[str], venv: Path,
                                                   tmp_path: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY pages ./pages\n" in dockerfile
    forgetful = tmp_path / "Dockerfile"
    forgetful.write_text(dockerfile.replace("COPY pages ./pages\n", ""))
    result = run_smoke("--venv", str(venv), "--dockerfile", str(forgetful))
    assert result.returncode == 1
    assert "image-smoke: FAILED at pages: the console does not render from the image's files" in result.stdout
    assert "The file `health.py` could not be found." in result.stdout


def test_a_file_the_build_context_leaves_out_fails_the_copy(tmp_path: Path) -> None:
    module = smoke()
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nWORKDIR /app\nCOPY core ./core\nCOPY extra.toml ./\n")
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "a.py").write_text("")
    (tmp_path / "extra.toml").write_text("")
    (tmp_path / ".dockerignore").write_text("*\n!core/\n")
    stages = module.parse_dockerfile((tmp_path / "Dockerfile").read_text())
    with pytest.raises(module.SmokeFailure, match=r"COPY extra.toml: not in the build context"):
        module.replay(stages, tmp_path, tmp_path / "out")
    (tmp_path / ".dockerignore").write_text("*\n!core/\n!extra.toml\n")
    image = module.replay(stages, tmp_path, tmp_path / "out2")
    assert sorted(p.relative_to(image.root).as_posix() for p in image.root.rglob("*") if p.is_file()) == \
        ["app/core/a.py", "app/extra.toml"]
