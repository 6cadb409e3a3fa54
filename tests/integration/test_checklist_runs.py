"""Runs, results, ticks, waivers, sign-off, the report and `python -m core check`, on both backends."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.auth import Actor
from core.checklist import catalogue
from core.checklist.catalogue import ITEMS, SECTIONS
from core.checklist.report import to_json, to_markdown
from core.cli import main
from core.config import reset_settings
from core.db import read_session
from core.errors import Conflict, PermissionDenied, UserInputError
from core.models import AuditRecord, ChecklistResult, ChecklistRun, utcnow
from core.queries.checklist import get_run_state
from core.services import checklist as svc
from core.uow import UnitOfWork
from tests.support.checklist import ADMIN
from tests.support.data import ROLE_ACTORS, seed_minimal

ERIN, ADA = ROLE_ACTORS["engineer"], ROLE_ACTORS["admin"]


def state(engine: Engine, run_id: int, **kw):
    with read_session(engine) as s:
        return get_run_state(s, actor=ADMIN, run_id=run_id, **kw)


def results(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(ChecklistResult))


def resolve_everything(engine: Engine, run_id: int, actor: Actor) -> None:
    """Tick every manual item and waive every automated blocking item that is not satisfied."""
    for item_state in state(engine, run_id).items:
        if item_state.status in ("pass", "warn", "done", "waived"):
            continue
        if item_state.item.automated:
            svc.waive_item(actor=actor, run_id=run_id, item_id=item_state.item.id, reason="not in this test",
                           uow=UnitOfWork(engine))
        else:
            svc.tick_item(actor=actor, run_id=run_id, item_id=item_state.item.id, note="done by hand",
                          uow=UnitOfWork(engine))


def test_the_catalogue_is_the_seed_in_its_order_and_words() -> None:
    seed = (Path(catalogue.__file__).parent / "seed.md").read_text(encoding="utf-8").replace("**", "")
    positions = [seed.index(item.title) for item in ITEMS]  # every title in the seed's words
    assert positions == sorted(positions)  # and in its order
    sections = [seed.index(s.title if s.key != "rollback" else "ROLLBACK PROCEDURES") for s in SECTIONS]
    assert sections == sorted(sections)
    assert len({i.id for i in ITEMS}) == len(ITEMS) and {i.section for i in ITEMS} == {s.key for s in SECTIONS}
    assert sum(i.automated for i in ITEMS) > 45


def test_one_run_per_environment_and_release(engine: Engine) -> None:
    first = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    again = svc.start_run(actor=ADA, uow=UnitOfWork(engine), release="r1")
    other = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r2")
    assert first.id == again.id != other.id and again.started_by == "erin"
    assert first.environment == "development"
    with pytest.raises(UserInputError):
        svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="  ")


def test_a_typed_empty_release_is_refused_and_only_none_means_release_id(engine: Engine) -> None:
    # "" once fell back to RELEASE_ID ("unknown"): the page's cleared Release box started a run for another release
    with pytest.raises(UserInputError, match="The release must be 1 to 100 characters"):
        svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="")
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ChecklistRun)) == 0
    assert svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release=None).release == "unknown"


def test_results_keep_their_history_and_carry_evidence(engine: Engine) -> None:
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    for _ in range(2):
        out = svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="db.create_tables")
        assert [r.status for r in out] == ["pass"]
    item = state(engine, run.id).by_id()["db.create_tables"]
    assert item.status == "pass" and item.runs == 2 and item.last.actor == "erin"
    assert {"measured", "value", "detail", "at", "duration_ms"} <= set(item.last.evidence)
    with read_session(engine) as s:
        audited = s.scalars(select(AuditRecord.action).where(AuditRecord.action == "checklist.check")).all()
    assert len(audited) == 2


def test_dependencies_block_and_results_go_stale(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)  # the agent system is off: activation fails
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    assert state(engine, run.id).by_id()["integration.real_data"].status == "pending"
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), section="activation")
    st = state(engine, run.id).by_id()
    assert st["activation.limited"].status == "blocked"  # its dependencies (table checks) never ran
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), section="database")
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), section="db_setup")
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="activation.limited")
    st = state(engine, run.id).by_id()
    assert st["activation.limited"].status == "fail" and st["integration.real_data"].status == "blocked"
    out = svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="integration.real_data")
    assert out[0].kind == "blocked" and "activation.limited (fail)" in out[0].evidence["detail"]
    later = utcnow() + timedelta(hours=25)
    assert state(engine, run.id, now=later).by_id()["db.create_tables"].status == "stale"


def test_a_window_not_open_yet_is_neither_done_nor_failed(engine: Engine) -> None:
    """Checks of the post-deployment windows run before the release was marked deployed measured nothing; the
    progress bar counted them as done."""
    seed_minimal(engine, conversations=0)
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    before = state(engine, run.id).progress
    out = svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="short_term.processes")
    assert [r.status for r in out] == ["waiting"] and "not marked deployed" in out[0].evidence["detail"]
    after = state(engine, run.id)
    assert after.progress == before and after.by_id()["short_term.processes"].status == "waiting"
    assert after.go and "short_term.processes" in {s.item.id for s in after.open}


def test_ticks_waivers_and_bad_input_write_nothing(engine: Engine) -> None:
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    before = results(engine)
    for bad in (lambda: svc.tick_item(actor=ERIN, run_id=run.id, item_id="db.create_tables", uow=UnitOfWork(engine)),
                lambda: svc.tick_item(actor=ERIN, run_id=run.id, item_id="no.such", uow=UnitOfWork(engine)),
                lambda: svc.tick_item(actor=ERIN, run_id=run.id, item_id="code.merge", note="  ",
                                      uow=UnitOfWork(engine)),
                lambda: svc.waive_item(actor=ERIN, run_id=run.id, item_id="rollback.full", reason="  ",
                                       uow=UnitOfWork(engine)),
                lambda: svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), section="nope"),
                lambda: svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="code.merge")):
        with pytest.raises(UserInputError):
            bad()
    # An automated item is never ticked: said before the missing note ("A note is required." sent people to type one)
    with pytest.raises(UserInputError, match="db.create_tables is checked automatically"):
        svc.tick_item(actor=ERIN, run_id=run.id, item_id="db.create_tables", note="", uow=UnitOfWork(engine))
    assert results(engine) == before
    svc.tick_item(actor=ERIN, run_id=run.id, item_id="code.merge", note="merged #42", uow=UnitOfWork(engine))
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="rollback.full")
    svc.waive_item(actor=ADA, run_id=run.id, item_id="rollback.full", reason="hook arrives with the platform",
                   uow=UnitOfWork(engine))
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="rollback.full")  # fails again
    st = state(engine, run.id).by_id()
    assert (st["code.merge"].status, st["code.merge"].last.note) == ("done", "merged #42")
    assert st["rollback.full"].status == "waived" and st["rollback.full"].last.status == "fail"
    assert st["rollback.full"].waiver.actor == "ada"


def test_viewers_may_not_run_tick_waive_or_sign_off(engine: Engine) -> None:
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    po = ROLE_ACTORS["product_owner"]
    said = []  # each refusal in words a person says ('may not checklist start for development unknown' before)
    for act in (lambda: svc.start_run(actor=po, uow=UnitOfWork(engine), release="r2"),
                lambda: svc.run_checks(actor=po, run_id=run.id, uow=UnitOfWork(engine), item_id="db.create_tables"),
                lambda: svc.tick_item(actor=po, run_id=run.id, item_id="code.merge", note="n", uow=UnitOfWork(engine)),
                lambda: svc.waive_item(actor=po, run_id=run.id, item_id="code.merge", reason="x", uow=UnitOfWork(engine)),
                lambda: svc.sign_off(actor=po, run_id=run.id, uow=UnitOfWork(engine))):
        with pytest.raises(PermissionDenied) as refused:
            act()
        said.append(str(refused.value).split(": ")[0])
    assert said == [f"pat (product_owner) may not {words}" for words in (
        "start a checklist run (development r2)", f"run checklist items (run {run.id})",
        f"tick checklist items (run {run.id} code.merge)", f"waive checklist items (run {run.id} code.merge)",
        f"sign a checklist run off (run {run.id})")]
    with read_session(engine) as s:
        refused = s.scalars(select(AuditRecord.action).where(AuditRecord.outcome == "refused")).all()
    assert refused == ["checklist.start", "checklist.run", "checklist.tick", "checklist.waive", "checklist.sign_off"]
    assert results(engine) == 0


def test_sign_off_needs_a_go_with_nothing_open(engine: Engine) -> None:
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="rollback.full")  # fails: no hook
    with pytest.raises(Conflict, match="Full Rollback"):
        svc.sign_off(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine))
    resolve_everything(engine, run.id, ERIN)
    assert state(engine, run.id).go and not state(engine, run.id).open
    svc.sign_off(actor=ERIN, run_id=run.id, note="staging ok", uow=UnitOfWork(engine))
    st = state(engine, run.id)
    assert (st.signed_off_by, st.sign_off_note) == ("erin", "staging ok")
    with pytest.raises(Conflict, match="already signed off"):
        svc.sign_off(actor=ADA, run_id=run.id, uow=UnitOfWork(engine))


def test_in_production_whoever_waived_a_blocking_item_may_not_sign_off(engine: Engine, monkeypatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COOKIE_KEY", "a-long-random-cookie-key-for-production-tests")
    reset_settings()
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    resolve_everything(engine, run.id, ERIN)
    with pytest.raises(PermissionDenied, match="someone other than whoever waived"):
        svc.sign_off(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine))
    svc.sign_off(actor=ADA, run_id=run.id, uow=UnitOfWork(engine))
    assert state(engine, run.id).signed_off_by == "ada"


def test_the_markdown_report_matches_the_recorded_run(engine: Engine) -> None:
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), section="database")
    svc.run_checks(actor=ERIN, run_id=run.id, uow=UnitOfWork(engine), item_id="rollback.full")
    svc.waive_item(actor=ADA, run_id=run.id, item_id="rollback.full", reason="hook | later", uow=UnitOfWork(engine))
    svc.tick_item(actor=ERIN, run_id=run.id, item_id="code.merge", note="merged", uow=UnitOfWork(engine))
    st = state(engine, run.id)
    md = to_markdown(st)
    lines = {line.split("`")[1]: line for line in md.splitlines() if line.startswith("- [")}
    assert list(lines) == [i.id for i in ITEMS]
    with read_session(engine) as s:
        newest = {r.item_id: r for r in s.scalars(select(ChecklistResult).where(
            ChecklistResult.kind != "waive").order_by(ChecklistResult.id))}
    for item_id, row in newest.items():
        line = lines[item_id]
        assert f"— {st.by_id()[item_id].status.upper()}" in line
        assert f"by {row.actor} at {row.recorded_at:%Y-%m-%d %H:%M:%S} UTC" in line
        assert (row.evidence.get("detail") or row.note) in line
    assert "waived by ada" in lines["rollback.full"] and "hook \\| later" in lines["rollback.full"]
    assert lines["db.create_tables"].startswith("- [x]") and lines["code.status"].startswith("- [ ]")
    assert f"Verdict: {st.verdict()}" in md and "## EMERGENCY CONTACTS" in md
    data = json.loads(to_json(st))
    assert data["run"] == run.id and data["items"][0]["id"] == ITEMS[0].id
    assert data["blocking"] == [] and "Platform Engineer" in data["contacts"]


def test_cli_exit_codes_and_report(engine: Engine, capsys) -> None:
    assert main(["check", "--item", "db.create_tables", "--release", "r9"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["check", "--item", "rollback.full", "--release", "r9"]) == 1
    out = capsys.readouterr().out
    assert "NO-GO: Full Rollback (< 15 minutes) (fail)" in out
    assert main(["check", "--section", "nope"]) == 2
    assert "Unknown checklist section 'nope'" in capsys.readouterr().err
    assert main(["check", "waive", "rollback.full", "--reason", " ", "--release", "new"]) == 2
    assert main(["check", "tick", "no.such", "--release", "new"]) == 2
    assert main(["check", "--item", "code.merge", "--release", "new"]) == 2  # manual: ticked, not run
    with read_session(engine) as s:
        assert s.scalars(select(ChecklistRun.release)).all() == ["r9"]  # bad input started no run
    assert main(["check", "waive", "rollback.full", "--reason", "later", "--release", "r9"]) == 0
    assert main(["check", "--item", "rollback.full", "--release", "r9", "--json"]) == 0  # waived: a go
    data = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert data["go"] is True and data["results"][0]["status"] == "fail"
    run_id = data["run"]
    assert main(["check", "report", str(run_id), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Staging checklist: development, release r9") and "waived by cli:" in md
    assert main(["check", "report", str(run_id), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["release"] == "r9"


@pytest.mark.parametrize("argv", [["tick", "code.merge", "--note", "merged"], ["waive", "code.merge", "--reason", "x"],
                                  ["deployed"], ["sign-off"]])
def test_a_mistyped_release_is_refused_and_starts_no_run(engine: Engine, capsys, argv: list[str]) -> None:
    """Each of these started a run for whatever release it was given before acting on it (two commits): a typo in
    --release, or a refused sign-off, left a new empty run and its audit record behind."""
    assert main(["check", "--item", "db.create_tables", "--release", "r9"]) == 0
    capsys.readouterr()
    audited = _audit_count(engine)
    assert main(["check", *argv, "--release", "r99"]) == 2
    assert "No checklist run for development, release 'r99'" in capsys.readouterr().err
    with read_session(engine) as s:
        assert s.scalars(select(ChecklistRun.release)).all() == ["r9"]
    assert _audit_count(engine) == audited
    assert main(["check", *argv, "--release", "r9"]) == (1 if argv == ["sign-off"] else 0)  # the run that exists


def test_an_empty_release_on_the_command_line_is_not_this_deployments(engine: Engine, capsys) -> None:
    """`--release ""` meant RELEASE_ID: an empty variable in a script ticked or ran the deployment's own run."""
    svc.start_run(actor=ERIN, uow=UnitOfWork(engine))  # release "unknown", RELEASE_ID's default
    before = results(engine)
    assert main(["check", "tick", "code.merge", "--note", "merged", "--release", ""]) == 2
    assert "No checklist run for development, release ''" in capsys.readouterr().err
    assert main(["check", "--item", "db.create_tables", "--release", ""]) == 2
    assert "The release must be 1 to 100 characters" in capsys.readouterr().err
    assert results(engine) == before
    with read_session(engine) as s:
        assert s.scalars(select(ChecklistRun.release)).all() == ["unknown"]


def test_a_release_name_cannot_forge_a_line_or_carry_a_link_into_the_report(engine: Engine) -> None:
    """The report's heading took the release as typed: a tag or a link drew in a Markdown viewer, and a newline
    forged a heading of its own ("## Signed off: yes")."""
    with pytest.raises(UserInputError, match="one line"):
        svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1\n## Signed off: yes")
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1 <img src=x> [login](https://evil.example)")
    heading = to_markdown(state(engine, run.id)).splitlines()[0]
    assert heading == "# Staging checklist: development, release r1 \\<img src=x\\> \\[login\\](https://evil.example)"


def _audit_count(engine: Engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(AuditRecord))


def test_a_note_cannot_become_a_tag_a_link_or_an_image_in_the_report(engine: Engine) -> None:
    """The walkthrough's finding: a note '<b>…</b>' went into the Markdown export raw, so a Markdown viewer drew the
    tag; an image link would load a tracker, and a right-to-left override would reorder the line."""
    run = svc.start_run(actor=ERIN, uow=UnitOfWork(engine), release="r1")
    note = "<b>merged</b> ![x](http://tracker.invalid/p.png) `rm` \u202eexe.jpg"
    svc.tick_item(actor=ERIN, run_id=run.id, item_id="code.merge", note=note, uow=UnitOfWork(engine))
    line = next(x for x in to_markdown(state(engine, run.id)).splitlines() if "`code.merge`" in x)
    assert "ticked: \\<b\\>merged\\</b\\> !\\[x\\](http://tracker.invalid/p.png) \\`rm\\` [U+202E]exe.jpg" in line
