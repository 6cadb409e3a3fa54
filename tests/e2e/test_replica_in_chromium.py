"""In Chromium, with a real streaming replica: Agent health shows the replica's lag; when the replica stops, the
figures keep coming under the banner "Reading from the primary: the read replica is unreachable"; when it is back,
the banner goes."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from dashboard.replica_widgets import FALLBACK_BANNER
from tests.conftest import _truncate_postgres
from tests.e2e.conftest import no_error_box, sign_in
from tests.support.pg_cluster import PgCluster
from tests.support.pg_replica import PgReplica, primary_with_replica, use_primary_and_replica

# The live panels refresh every 3 s here (HEALTH_REFRESH_SECONDS) and cache their figures for 10 s: a change shows
# within about 13 s.
PANEL_CHANGE_MS = 60_000


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PgCluster, PgReplica]]:
    with primary_with_replica() as both:
        yield both


@pytest.fixture
def db_url(pair) -> str:  # the console fixture's database: the private primary
    primary, replica = pair
    return primary.url(replica.database)


@pytest.fixture
def engine(pair, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The primary, with DATABASE_READ_URL set for the console process the `console` fixture starts."""
    primary, replica = pair
    eng = use_primary_and_replica(primary, replica, monkeypatch)
    monkeypatch.setenv("DATABASE_READ_RETRY_SECONDS", "2")
    monkeypatch.setenv("HEALTH_REFRESH_SECONDS", "3")
    _truncate_postgres(eng)
    yield eng
    eng.dispose()


def test_the_lag_panel_and_the_fallback_banner(pair, console: str, page: Page) -> None:
    _primary, replica = pair
    replica.wait_caught_up()
    sign_in(page, console, "engineer")
    expect(page.get_by_text("Replica lag")).to_be_visible(timeout=30_000)
    expect(page.get_by_text(FALLBACK_BANNER)).to_have_count(0)
    replica.stop()
    expect(page.get_by_text(FALLBACK_BANNER)).to_be_visible(timeout=PANEL_CHANGE_MS)
    expect(page.get_by_text("The read replica is unreachable (")).to_be_visible(timeout=PANEL_CHANGE_MS)
    expect(page.get_by_test_id("stMetricLabel").filter(has_text="Conversations")).to_be_visible()
    no_error_box(page)
    replica.start()
    expect(page.get_by_text(FALLBACK_BANNER)).to_have_count(0, timeout=PANEL_CHANGE_MS)
    expect(page.get_by_text("Replica lag")).to_be_visible(timeout=PANEL_CHANGE_MS)
    no_error_box(page)
