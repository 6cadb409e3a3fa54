"""The CLI imports only what the command needs: `--help` lists every group without the database layer, and a read
command never loads alembic, openai or the seed generator (they cost most of a second before)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import Engine

from core.cli.main import COMMANDS

HEAVY = ("alembic", "openai", "httpx", "httpx2", "core.seed.generate", "core.llm", "pandas", "streamlit", "fastapi")
PROBE = """
import json, sys
from core.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                  ("alembic", "openai", "httpx", "pandas", "streamlit", "fastapi", "sqlalchemy", "pydantic")
                  or m in ("core.seed.generate", "core.llm"))}))
"""


def run_cli(*args: str) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, check=False)
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def test_help_lists_every_group_without_loading_the_database_layer() -> None:
    result, out = run_cli("--help")
    assert result["code"] == 0
    for name in COMMANDS:
        assert f"    {name} " in out or f"    {name}\n" in out, name
    assert result["modules"] == [], "--help imports nothing beyond argparse"


def test_a_read_command_loads_no_alembic_openai_or_seed(engine: Engine) -> None:
    result, out = run_cli("status")
    assert result["code"] == 0 and "agent system:" in out
    assert "sqlalchemy" in result["modules"]
    assert [m for m in result["modules"] if m.startswith(HEAVY)] == []


@pytest.mark.parametrize("command", sorted({m for m, _ in COMMANDS.values()}))
def test_each_group_module_registers_the_names_the_table_lists(command: str) -> None:
    from core.cli.main import build_parser

    listed = {name for name, (module, _) in COMMANDS.items() if module == command}
    first = min(listed)
    parser = build_parser(first)
    sub = next(a for a in parser._actions if a.dest == "command")
    registered = {name for name, p in sub.choices.items() if p.get_default("func") or p._subparsers}
    assert registered == listed
