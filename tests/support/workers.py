"""Run a real Worker in a thread until a condition holds (no sleeps standing in for assertions)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.auth import system_actor
from core.config import get_settings, reset_settings
from core.db import read_session
from core.models import Conversation, Message
from core.services import controls
from core.services.conversations import enqueue_conversations
from core.uow import UnitOfWork
from core.worker.runner import Worker
from tests.support.data import seed_minimal


def configure(monkeypatch: pytest.MonkeyPatch, **env: object) -> None:
    """Set worker settings for this test (fast polls and heartbeats unless told otherwise)."""
    defaults = {"AGENT_POLL_SECONDS": 0.05, "AGENT_HEARTBEAT_SECONDS": 0.2, "AGENT_RETRY_BASE_SECONDS": 0.01,
                "AGENT_RETRY_MAX_SECONDS": 0.05, "AGENT_SETTINGS_TTL_SECONDS": 0.2}
    for key, value in {**defaults, **env}.items():
        monkeypatch.setenv(key, str(value))
    reset_settings()


def prepare(engine: Engine, n: int, **scope: object) -> list[int]:
    """The minimal seed, the agents switched fully on, and N pending conversations (narrowed by SCOPE)."""
    admin = system_actor("test")
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=admin, mode="full", reason="test", uow=UnitOfWork(engine))
    return enqueue_conversations(actor=admin, count=n, uow=UnitOfWork(engine), **scope)


def agent_messages_per_conversation(engine: Engine) -> dict[int, int]:
    """How many agent messages each conversation has (1 each: nothing lost, nothing sent twice)."""
    with read_session(engine) as s:
        return dict(s.execute(select(Message.conversation_id, func.count()).where(Message.role == "agent")
                              .group_by(Message.conversation_id)).all())


def status_counts(engine: Engine) -> dict[str, int]:
    with read_session(engine) as s:
        return dict(s.execute(select(Conversation.status, func.count()).group_by(Conversation.status)).all())


def spawn_worker(db_url: str, fake_url: str, tmp_path: Path, name: str, **env: object) -> subprocess.Popen:
    """`python -m core worker` as its own process against DB_URL and the loopback model; logs to NAME.log."""
    full = {"PATH": os.environ["PATH"], "DATABASE_URL": db_url, "OPENAI_API_KEY": "sk-test-loopback",
            "OPENAI_BASE_URL": fake_url, "AGENT_POLL_SECONDS": "0.05", "AGENT_HEARTBEAT_SECONDS": "0.3",
            "AGENT_SETTINGS_TTL_SECONDS": "0.2", **{k: str(v) for k, v in env.items()}}
    if "PYTHONPATH" in os.environ:  # a worktree's tests run its own `core`, not the one installed editable
        full["PYTHONPATH"] = os.environ["PYTHONPATH"]
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "core", "worker"], env=full, stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path)


class RunningWorker:
    """A worker on its own thread; stop() waits for it to finish cleanly."""

    def __init__(self, engine: Engine, **kwargs: object) -> None:
        self.worker = Worker(engine=engine, settings=get_settings(), **kwargs)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "worker did not stop within 30 s"


def wait_for(condition: Callable[[], bool], *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll CONDITION until true; fail with WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
