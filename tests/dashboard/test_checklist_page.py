"""The Checklist page through the real entrypoint: start a run, run all with progress, one item, tick, waive,
sign off; viewers see without acting; every error stays on screen and writes nothing."""
from __future__ import annotations

from sqlalchemy import Engine, func, select
from streamlit.runtime.memory_media_file_storage import _calculate_file_id

from core.checklist.catalogue import ITEMS
from core.checklist.report import to_markdown
from core.db import read_session
from core.models import ChecklistResult, ChecklistRun
from core.queries.checklist import get_run_state
from core.services import checklist as svc
from core.uow import UnitOfWork
from tests.dashboard.conftest import body_text, in_form, open_app, sign_in, submit
from tests.support.checklist import ADMIN

AUTOMATED = sum(i.automated for i in ITEMS)


def open_checklist(username: str):
    at = sign_in(open_app(), username)
    at.switch_page("../pages/checklist.py").run()
    assert not at.exception
    return at


def results(engine: Engine, **where: str) -> int:
    with read_session(engine) as s:
        q = select(func.count()).select_from(ChecklistResult)
        for key, value in where.items():
            q = q.where(getattr(ChecklistResult, key) == value)
        return s.scalar(q)


def start(engine: Engine) -> int:
    return svc.start_run(actor=ADMIN, uow=UnitOfWork(engine)).id


def test_an_engineer_starts_the_run(console_db: Engine) -> None:
    at = open_checklist("engineer")
    assert "No checklist run for this environment and release yet." in body_text(at)
    assert "environment: development\nrelease: unknown" in body_text(at)
    at = submit(at, "checklist_start")
    assert not at.exception
    with read_session(console_db) as s:
        assert s.scalars(select(ChecklistRun.started_by)).all() == ["engineer"]
    headings = [h.value for h in at.subheader]
    assert "Environment Setup" in headings and "Extended Validation (24-48 hours)" in headings
    assert any(f"Overall: 0 of {len(ITEMS)} items done" in str(p.proto) for p in at.get("progress"))


def test_an_empty_release_is_refused_in_one_sentence_and_starts_no_run(console_db: Engine) -> None:
    at = open_checklist("engineer")
    at.text_input(key="checklist_release").input("").run()
    at = submit(at, "checklist_start")
    assert not at.exception
    assert [e.value for e in at.error][-1].startswith("The release must be 1 to 100 characters")
    assert "No checklist run for this environment and release yet." in body_text(at)
    with read_session(console_db) as s:
        assert s.scalar(select(func.count()).select_from(ChecklistRun)) == 0


def test_waive_needs_a_reason_then_tick_waive_and_run_one(console_db: Engine) -> None:
    start(console_db)
    at = open_checklist("engineer")
    in_form(at, "checklist_item", "Item").set_value("rollback.full")
    in_form(at, "checklist_item", "Action").set_value("waive")
    at = submit(at, "checklist_item")
    assert not at.exception
    assert [e.value for e in at.error][-1] == "A reason for the waiver is required."
    assert results(console_db) == 0
    in_form(at, "checklist_item", "Note (tick) or reason (waive); required").input("hook arrives next week")
    at = submit(at, "checklist_item")
    assert not at.exception and results(console_db, kind="waive") == 1
    in_form(at, "checklist_item", "Item").set_value("code.merge")
    in_form(at, "checklist_item", "Action").set_value("tick")
    in_form(at, "checklist_item", "Note (tick) or reason (waive); required").input("merged #42")
    at = submit(at, "checklist_item")
    in_form(at, "checklist_item", "Item").set_value("db.create_tables")
    in_form(at, "checklist_item", "Action").set_value("run")
    at = submit(at, "checklist_item")
    assert not at.exception
    with read_session(console_db) as s:
        st = get_run_state(s, actor=ADMIN, run_id=1).by_id()
    assert (st["rollback.full"].status, st["code.merge"].status, st["db.create_tables"].status) == \
        ("waived", "done", "pass")
    tables = {t for df in at.dataframe for t in df.value.get("id", [])}
    assert {"rollback.full", "code.merge", "db.create_tables"} <= tables


def test_run_all_records_every_automated_item_and_sign_off_is_refused_while_no_go(console_db: Engine) -> None:
    start(console_db)
    at = open_checklist("admin")
    # Said before the click: the run switches the live system off for a moment (the walkthrough found no word of it).
    assert any(c.value.startswith(f"Runs the {AUTOMATED} automated checks. Among them, ") for c in at.caption)
    assert any("the kill-switch dry run switches the agent system off until every live worker acknowledges "
               "(at most 20 s), then puts it back as it was" in c.value for c in at.caption)
    at = submit(at, "checklist_run_all")
    assert not at.exception
    assert results(console_db) == AUTOMATED
    assert any(e.value.startswith("NO-GO: ") for e in at.error)
    at = submit(at, "checklist_sign_off")
    assert not at.exception
    assert any(e.value.startswith("Not signed off: ") for e in at.error)
    with read_session(console_db) as s:
        assert s.scalar(select(ChecklistRun.signed_off_by)) is None


def test_viewers_see_the_run_without_any_action(console_db: Engine) -> None:
    run_id = start(console_db)
    svc.tick_item(actor=ADMIN, run_id=run_id, item_id="code.merge", note="merged", uow=UnitOfWork(console_db))
    for username in ("po", "support"):
        at = open_checklist(username)
        assert "Checklist" in [t.value for t in at.title]
        assert "You can view; engineers and admins run, tick, waive and sign off." in body_text(at)
        assert not [b for b in at.button if b.form_id]  # no form, no action
        assert "Emergency contacts" in [h.value for h in at.subheader]
        listed = [df.value for df in at.dataframe if "release" in df.value.columns]
        assert len(listed) == 1 and list(listed[0]["release"]) == ["unknown"]  # the runs, newest first


def test_the_export_is_the_report_of_the_recorded_run(console_db: Engine) -> None:
    run_id = start(console_db)
    svc.run_checks(actor=ADMIN, run_id=run_id, uow=UnitOfWork(console_db), section="database")
    at = open_checklist("engineer")
    with read_session(console_db) as s:
        expected = to_markdown(get_run_state(s, actor=ADMIN, run_id=run_id))
    exports = {d.proto.label: d.proto.url for d in at.get("download_button")}
    # The served file's id is a hash of its bytes, type and name: equal ids mean the very same report.
    file_id = _calculate_file_id(expected.encode(), "text/markdown", "checklist-development-unknown.md")
    assert exports["Export Markdown report"] == f"/mock/media/{file_id}.md"
    assert expected.splitlines()[0] == "# Staging checklist: development, release unknown"
    assert "Export JSON" in exports
