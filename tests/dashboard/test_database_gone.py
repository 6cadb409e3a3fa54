"""Every page after a real `db cleanup`, and with the database down: one sentence and the way back, never
Streamlit's error box, and that sentence once however many reads meet the problem."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine

from core.cli import main
from core.config import reset_settings
from core.db import dispose_engines
from dashboard import data
from dashboard.navigation import PAGES
from tests.dashboard.conftest import body_text, open_app, sign_in

# The pages that read agent tables (the others read users, sessions and the audit log, which a cleanup keeps).
READS_AGENT_TABLES = {"Agent health", "Conversations", "Review queues", "Alerts", "Controls", "Rollbacks"}


@pytest.mark.parametrize("spec", PAGES, ids=[p.url_path for p in PAGES])
def test_each_page_after_a_database_rollback(console_db: Engine, spec, capsys) -> None:  # noqa: ANN001
    at = sign_in(open_app(), "admin")
    assert main(["db", "cleanup", "--yes"]) == 0
    capsys.readouterr()
    data.health_figures.clear()  # the figures are cached for 10 s; a person opening the page later meets no cache
    at.switch_page(f"../pages/{spec.file}").run()
    assert not at.exception
    assert spec.title in [t.value for t in at.title]
    sentences = [e.value for e in at.error]
    if_missing = [s for s in sentences if "agent tables are missing" in s]
    assert len(if_missing) == (1 if spec.title in READS_AGENT_TABLES else 0), sentences
    assert all("`python -m core db restore PATH`" in s and "`python -m core db setup`" in s for s in if_missing)


@pytest.mark.parametrize("spec", PAGES, ids=[p.url_path for p in PAGES])
def test_each_page_with_the_database_down(console_db: Engine, spec, monkeypatch) -> None:  # noqa: ANN001
    at = sign_in(open_app(), "admin")
    at.switch_page(f"../pages/{spec.file}").run()
    assert spec.title in [t.value for t in at.title]
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    reset_settings()
    dispose_engines()
    at.run()
    assert not at.exception
    down = [e.value for e in at.error]
    assert len(down) == 1 and down[0].startswith("The database cannot be reached ("), down
    assert "DATABASE_URL" in down[0]


def test_the_rollbacks_page_still_lists_its_runs_after_a_database_rollback(console_db: Engine) -> None:
    at = sign_in(open_app(), "engineer")
    assert main(["db", "cleanup", "--yes"]) == 0
    at.switch_page("../pages/rollbacks.py").run()
    assert not at.exception
    assert "agent tables are missing" in body_text(at)
    assert "Runs" in [h.value for h in at.subheader]


def test_the_console_on_a_mistyped_sqlite_path_says_so_and_makes_nothing(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Opening the console made an empty database (and its folders) at a typo's path."""
    missing = tmp_path / "typo" / "agentops.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    reset_settings()
    dispose_engines()
    at = sign_in(open_app(), "admin")
    assert not at.exception
    assert [e.value for e in at.error] == [f"DATABASE_URL: there is no SQLite file at {missing}; check the path, "
                                           "or create the database with `python -m core db setup`."]
    assert not (tmp_path / "typo").exists()
