"""Sentry through a loopback ingest: each agent error once with its agent tags; the API reports as component=api."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select, update

from core.db import read_session
from core.models import Client, Conversation
from tests.support.fake_sentry import FakeSentry
from tests.support.net import free_port
from tests.support.workers import prepare, spawn_worker, status_counts, wait_for

@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    server = FakeSentry().start()
    yield server
    server.stop()


def test_every_agent_error_reaches_sentry_once_with_its_agent_tags(pg_engine: Engine, pg_database: str, fake_openai,
                                                                   fake_sentry: FakeSentry, tmp_path: Path) -> None:
    ids = prepare(pg_engine, 6)
    with pg_engine.begin() as conn:  # every client listens, so every conversation asks the model
        conn.execute(update(Client).values(opted_out=False))
    fake_openai.set("500")  # the model refuses every call; each conversation tries it twice
    worker = spawn_worker(pg_database, fake_openai.base_url, tmp_path, "w", SENTRY_DSN=fake_sentry.dsn,
                          AGENT_RETRY_ATTEMPTS=2, AGENT_RETRY_BASE_SECONDS=0.01, BREAKER_FAILURE_THRESHOLD=1000)
    try:
        wait_for(lambda: status_counts(pg_engine).get("failed", 0) == len(ids), what="every conversation to fail")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0  # the SDK flushes its queue as the process exits
    assert fake_openai.calls == 2 * len(ids)
    with read_session(pg_engine) as s:
        expected = {str(c.id): (c.agent_type, str(c.shop_id)) for c in s.scalars(select(Conversation))}
    events = fake_sentry.error_events()
    tags = [e.get("tags", {}) for e in events]
    assert sorted(t.get("conversation_id") for t in tags) == sorted(expected)  # each failure once, none untagged
    for t in tags:
        assert (t["agent_type"], t["shop_id"]) == expected[t["conversation_id"]]
        assert (t["environment"], t["component"]) == ("development", "worker")
    assert all("InternalServerError" in str(e["exception"]) for e in events)


def test_the_api_reports_its_errors_as_component_api(fake_sentry: FakeSentry, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a SQLite database" * 400)  # every request that reads it fails unexpectedly
    port = free_port()
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{broken}", "SENTRY_DSN": fake_sentry.dsn}
    api = subprocess.Popen([sys.executable, "-m", "core", "api", "--port", str(port)], env=env, cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), what="the API to listen")
        response = httpx.get(f"http://127.0.0.1:{port}/api/v2/agents/status",
                             headers={"Authorization": "Bearer not-a-real-token-123"})
        assert response.status_code == 500 and "traceback" not in response.text.lower()
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=20)
    events = fake_sentry.error_events()
    assert len(events) == 1
    assert events[0]["tags"]["component"] == "api" and "DatabaseError" in str(events[0]["exception"])


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
