"""House rules checked mechanically: core never imports streamlit; nothing connects at import time."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_core_never_imports_streamlit() -> None:
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_importing_every_core_module_connects_to_nothing() -> None:
    # An unreachable database: any import-time connection would hang or fail.
    code = (
        "import importlib, pkgutil, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    if '.migrations' in m.name or m.name == 'core.__main__': continue\n"
        "    importlib.import_module(m.name)\n"
        "print('imported')\n"
    )
    env = {"DATABASE_URL": "postgresql://nobody@203.0.113.1:1/none", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported"
