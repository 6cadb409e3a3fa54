"""Agent health and the audit log with a read replica that does not answer (both backends): the figures still come,
from the primary, under one banner saying so; without a replica the page says every read goes to the primary."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine

from core.config import reset_settings
from core.db import dispose_engines
from core.read_routing import forget_replica_state
from dashboard import data
from dashboard.replica_widgets import FALLBACK_BANNER
from tests.dashboard.conftest import body_text, open_app, sign_in
from tests.support.net import free_port


@pytest.fixture
def dead_replica(console_db: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_READ_URL", f"postgresql://reader:s3cret@127.0.0.1:{free_port()}/agentops")
    reset_settings()
    dispose_engines()
    forget_replica_state()
    data.replica_status.clear()
    yield console_db
    forget_replica_state()


def test_health_without_a_replica_reads_the_primary_and_says_so(console_db: Engine) -> None:
    data.replica_status.clear()
    at = sign_in(open_app(), "po")
    assert not at.exception
    text = body_text(at)
    assert "No read replica is configured (DATABASE_READ_URL)" in text and FALLBACK_BANNER not in text


def test_health_with_the_replica_down_shows_figures_from_the_primary_under_a_banner(dead_replica: Engine) -> None:
    at = sign_in(open_app(), "po")
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert sum(FALLBACK_BANNER in w for w in warnings) == 1, warnings
    text = body_text(at)
    assert "The read replica is unreachable (" in text and "s3cret" not in text
    assert int(next(m.value for m in at.metric if m.label == "Conversations").replace(",", "")) > 0
    assert not at.error  # not the database banner: the primary answered


def test_the_audit_log_with_the_replica_down(dead_replica: Engine) -> None:
    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/audit.py").run()
    assert not at.exception
    assert any(FALLBACK_BANNER in w.value for w in at.warning)
    assert "matching records" in body_text(at) and not at.error
