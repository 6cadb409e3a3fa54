"""The claim that brings its conversations' prompts along (PostgreSQL: one statement for both)."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine, event

from core.db import read_session
from core.models import utcnow
from core.queries.settings import get_activation_state
from core.worker import store
from core.worker.context import TemplateCache, load_prompt, render_prompt
from tests.support.workers import prepare


def _claim(engine: Engine, statements: list[str]) -> list:
    with read_session(engine) as s:
        state = get_activation_state(s)
    templates = TemplateCache()
    with engine.connect() as conn:
        templates.get(conn, "rebooking")  # the templates are cached already, as in a running worker

    def keep(_conn, _cursor, statement, *_rest) -> None:  # noqa: ANN001
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", keep)
    try:
        return store.claim_and_load(engine, worker_id="w", limit=5, scope=state.scope(), lease_seconds=60,
                                    settings_version=state.version, templates=templates)
    finally:
        event.remove(Engine, "before_cursor_execute", keep)


def test_on_postgresql_claimed_conversations_come_with_their_prompts_in_one_statement(pg_engine: Engine) -> None:
    prepare(pg_engine, 12)
    statements: list[str] = []
    claimed = _claim(pg_engine, statements)
    assert len(claimed) == 5
    assert [s for s in statements if "agent_conversations" in s] == statements[-1:]  # claim and load: one
    now = utcnow()
    with pg_engine.connect() as conn:
        for conv_id, loaded in claimed:  # the same prompt a separate read renders
            assert render_prompt(loaded, now) == load_prompt(conn, conv_id, now, TemplateCache())


@pytest.mark.parametrize("backend", ["sqlite"])
def test_on_sqlite_the_claim_returns_ids_and_the_worker_reads_each_prompt(engine: Engine) -> None:
    prepare(engine, 12)
    claimed = _claim(engine, [])
    assert len(claimed) == 5 and [loaded for _, loaded in claimed] == [None] * 5
