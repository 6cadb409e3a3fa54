"""`make run`'s demo traffic (`conversations enqueue --every`) through a database rollback: it says so, waits, and
comes back after `db restore`, never exits."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select

from core.cli import main
from core.db import read_session
from core.models import Conversation
from tests.support.data import seed_minimal
from tests.support.workers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def conversations(engine: Engine) -> int:
    if "agent_conversations" not in inspect(engine).get_table_names():
        return -1
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(Conversation))


class Output:
    """The lines a child process prints, collected as they come."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


def test_demo_traffic_waits_through_a_database_rollback(engine: Engine, db_url: str,
                                                        capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine)
    env = {**os.environ, "DATABASE_URL": db_url}
    proc = subprocess.Popen([sys.executable, "-m", "core", "conversations", "enqueue", "--count", "1", "--every",
                             "0.2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(proc)
    try:
        wait_for(lambda: conversations(engine) >= 62, what="the demo traffic")
        assert main(["db", "cleanup", "--yes"]) == 0
        backup = capsys.readouterr().out.split("restore with: python -m core db restore ")[1].strip()
        wait_for(lambda: out.saw("waiting: The agent tables are missing"), what="the loop to say it waits")
        assert proc.poll() is None, "the demo traffic must not exit while the tables are missing"
        assert main(["db", "restore", backup]) == 0
        restored = conversations(engine)
        wait_for(lambda: conversations(engine) > restored, what="the demo traffic to come back")
        wait_for(lambda: out.saw("the database is back; carrying on"), what="the loop to say it carries on")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert not out.saw("Traceback")


def test_the_alert_evaluator_waits_through_a_database_rollback(engine: Engine, db_url: str,
                                                               capsys: pytest.CaptureFixture) -> None:
    seed_minimal(engine, conversations=0)
    env = {**os.environ, "DATABASE_URL": db_url}
    proc = subprocess.Popen([sys.executable, "-m", "core", "alerts", "run", "--every", "0.3"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(proc)
    try:
        wait_for(lambda: out.saw("evaluated 14 rules"), what="the evaluator's first cycle")
        assert main(["db", "cleanup", "--yes"]) == 0
        backup = capsys.readouterr().out.split("restore with: python -m core db restore ")[1].strip()
        wait_for(lambda: out.saw("waiting: The agent tables are missing"), what="the evaluator to say it waits")
        assert proc.poll() is None, "the evaluator must not exit while the tables are missing"
        assert main(["db", "restore", backup]) == 0
        wait_for(lambda: out.saw("the database is back; carrying on"), what="the evaluator to carry on")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert not out.saw("Traceback")
