"""What people type into forms, links and flags: a huge or negative number, 'nan', an empty comment, the last
admin's own demotion. Each is one sentence and nothing changed, never an overflow in the driver or a console
nobody can administer (found by a walkthrough of the console, each a crash or a hole before)."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from core.db import read_session
from core.errors import Conflict, NotFound, UserInputError
from core.models import AlertState, ApiToken, AuditRecord, User, utcnow
from core.queries import review as rq
from core.queries.conversation_filters import parse_filter
from core.services import alerts, users
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal

ADMIN, ENGINEER, SUPPORT = ROLE_ACTORS["admin"], ROLE_ACTORS["engineer"], ROLE_ACTORS["support"]
HUGE = "9" * 23


def _admins(engine: Engine) -> list[tuple[str, str, bool]]:
    with read_session(engine) as s:
        return sorted(tuple(r) for r in s.execute(select(User.username, User.role, User.disabled)))


def _add(engine: Engine, name: str, role: str, shops: tuple[int, ...] = ()) -> None:
    users.add_user(actor=ADMIN, username=name, password="long enough pw", role=role, shops=shops,
                   uow=UnitOfWork(engine))


def test_the_last_admin_can_be_neither_demoted_nor_disabled(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    _add(engine, "root", "admin")
    _add(engine, "sue", "engineer")
    before = _admins(engine)
    with pytest.raises(Conflict, match="last enabled admin"):
        users.set_role(actor=ADMIN, username="root", role="support", shops=[1], uow=UnitOfWork(engine))
    with pytest.raises(Conflict, match="last enabled admin"):
        users.set_disabled(actor=ADMIN, username="root", disabled=True, uow=UnitOfWork(engine))
    assert _admins(engine) == before
    users.set_role(actor=ADMIN, username="sue", role="admin", uow=UnitOfWork(engine))  # a second admin
    users.set_role(actor=ADMIN, username="root", role="engineer", uow=UnitOfWork(engine))
    assert ("root", "engineer", False) in _admins(engine)


def test_a_role_change_to_a_scoped_role_needs_shops_that_exist(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    _add(engine, "sue", "engineer")
    for shops, error in ((None, "needs the shops"), ([], "needs the shops"), ([424242], "No shop with id 424242"),
                         ([int(HUGE)], "whole number")):
        with pytest.raises(UserInputError, match=error):
            users.set_role(actor=ADMIN, username="sue", role="support", shops=shops, uow=UnitOfWork(engine))
    assert ("sue", "engineer", False) in _admins(engine)
    with pytest.raises(UserInputError, match="whole number"):
        _add(engine, "tia", "support", shops=(int(HUGE),))


@pytest.mark.parametrize("raw, error", [
    ({"shop_id": HUGE}, "shop id must be a whole number"), ({"shop_id": "-1"}, "shop id must be a whole number"),
    ({"judge_min": "nan"}, "Judge score at least must be a number"),
    ({"judge_max": "1e400"}, "Judge score at most must be a number"),
    ({"judge_min": "4", "judge_max": "2"}, "at least cannot be above"),
    # The judge scores on the review scale (1-5): "at least 9" showed 0 conversations without a word why.
    ({"judge_min": "9"}, r"Judge score at least must be a number from 1 to 5 \(got '9'\)"),
    ({"judge_max": "0"}, r"Judge score at most must be a number from 1 to 5 \(got '0'\)"),
])
def test_conversation_filters_refuse_numbers_no_row_can_match(raw: dict, error: str) -> None:
    with pytest.raises(UserInputError, match=error):
        parse_filter(raw)


def test_a_support_users_typo_in_a_shop_id_is_not_an_access_attempt(engine: Engine) -> None:
    seed_minimal(engine)
    with read_session(engine) as s:
        audited = s.scalar(select(func.count()).select_from(AuditRecord))
        with pytest.raises(UserInputError, match="There is no shop 424242"):
            rq.list_conversations(s, actor=SUPPORT, filters=parse_filter({"shop_id": "424242"}))
        with pytest.raises(NotFound, match="No conversation"):
            rq.get_transcript_or_raise(s, actor=SUPPORT, conversation_id=int(HUGE))
        assert s.scalar(select(func.count()).select_from(AuditRecord)) == audited, "no refusal recorded"


def test_alert_forms_refuse_numbers_that_would_break_the_evaluator(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    spec = {"key": "r1", "metric": "error_rate", "threshold": 0.1, "window_minutes": 60}
    for change, error in (({"window_minutes": 99999999999}, "window"), ({"threshold": "nan"}, "threshold"),
                          ({"shop_id": HUGE}, "shop"), ({"pending_seconds": 10**12}, "pending period")):
        with pytest.raises(UserInputError, match=error):
            alerts.save_rule(actor=ENGINEER, spec={**spec, **change}, uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="minutes"):
        alerts.create_silence(actor=ENGINEER, matchers="rule=r1", minutes=99999999999999, reason="x",
                              uow=UnitOfWork(engine))
    alerts.save_rule(actor=ENGINEER, spec=spec, uow=UnitOfWork(engine))


def _firing_alert(engine: Engine) -> int:
    seed_minimal(engine, conversations=0)
    rule_id = alerts.save_rule(actor=ENGINEER, spec={"key": "r1", "metric": "error_rate", "threshold": 0.1},
                               uow=UnitOfWork(engine))
    with UnitOfWork(engine) as uow:
        uow.session.add(AlertState(rule_id=rule_id, state="firing", firing_since=utcnow()))
        uow.commit()
    with read_session(engine) as s:
        return s.scalar(select(AlertState.id))


def test_an_acknowledgement_needs_its_comment(engine: Engine) -> None:
    alert_id = _firing_alert(engine)
    with pytest.raises(UserInputError, match="comment"):
        alerts.acknowledge_alert(actor=ENGINEER, alert_id=alert_id, comment="  ", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        assert s.get(AlertState, alert_id).acked_by is None


@pytest.mark.parametrize("argv", [
    ["alerts", "ack", HUGE, "--comment", "x"], ["tokens", "revoke", HUGE], ["check", "report", HUGE],
    ["conversations", "enqueue", "--count", "1", "--shop", HUGE],
    ["users", "add", "tia", "--role", "support", "--shops", f"1,{HUGE}"],
])
def test_the_cli_refuses_an_id_no_row_can_have_in_one_sentence(engine: Engine, argv: list[str],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Each was an OverflowError traceback from the SQLite driver."""
    from core.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert "must be a whole number from 1 to" in err or "each from 1 to 2,147,483,647" in err


@pytest.mark.parametrize("argv, error", [
    (["audit", "list", "--limit", "-1"], "--limit: the value must be a whole number from 1 to 10,000"),
    (["seed", "--test-data", "minimal", "--days", "1000000"], "--days: the value must be a whole number from 1"),
    (["review", "fill", "--days", HUGE], "--days: the value must be a whole number from 1"),
    (["retention", "--keep-months", "1000000", "--dry-run"], "--keep-months: the value must be a whole number"),
    (["conversations", "enqueue", "--count", "1", "--every", "nan"], "--every: the seconds must be a number"),
    (["probe", "--every", "-1"], "--every: the seconds must be a number from 0.1 to 86,400"),
    (["api", "--port", "99999999"], "--port: the value must be a whole number from 1 to 65,535"),
    (["worker", "--max-seconds", "0"], "--max-seconds: the seconds must be a number from 0.1"),
    (["rollback", "immediate", "--reason", "x", "--wait", "inf"], "--wait: the seconds must be a number"),
])
def test_the_cli_refuses_counts_and_periods_out_of_range(argv: list[str], error: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Each was a traceback (an overflow, a negative sleep, a bind error) or silently ran with the bad value."""
    from core.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and error in err and "Traceback" not in err


@pytest.mark.parametrize("argv, error", [
    (["conversations", "list", "--since", "0001-01-01T00:00:00+14:00"], "since must be between 2000 and 2999"),
    (["rollups", "rebuild", "--since", "0001-01-01"], "--since must be between 2000 and 2999"),
    (["--actor", "ghost", "status"], "No active user named 'ghost'"),
    (["--actor", " ", "status"], "--actor needs a user name"),
    (["tokens", "create", "--user", "admin", "--name", "x" * 5000], "A token's name can have at most 100 characters"),
    (["db", "restore", "x" * 5000], "cannot be read: File name too long"),
])
def test_the_cli_answers_bad_values_in_one_sentence(engine: Engine, argv: list[str], error: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Tracebacks before (a year-1 date, a name wider than its column on PostgreSQL, a path too long), or a command
    run as the shell operator when --actor named nobody."""
    from core.cli import main

    seed_minimal(engine, conversations=0)
    _add(engine, "admin", "admin")
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (1, 2) and error in err and "Traceback" not in err


def test_a_password_longer_than_bcrypt_reads_is_refused(engine: Engine) -> None:
    with pytest.raises(UserInputError, match="at most 72 bytes"):
        users.add_user(actor=ADMIN, username="long", password="é" * 40, role="engineer", uow=UnitOfWork(engine))


def test_only_postgresql_and_sqlite_urls_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import SettingsError, get_settings, reset_settings

    monkeypatch.setenv("DATABASE_URL", "mysql://x@127.0.0.1/y")
    reset_settings()
    with pytest.raises(SettingsError, match=r"a PostgreSQL \(postgresql://\) or SQLite"):
        get_settings()
    reset_settings()


def test_an_acknowledgement_is_owned_by_an_active_user(engine: Engine) -> None:
    alert_id = _firing_alert(engine)
    with pytest.raises(NotFound, match="No active user named 'ghost'"):
        alerts.acknowledge_alert(actor=ENGINEER, alert_id=alert_id, comment="mine", owner="ghost",
                                 uow=UnitOfWork(engine))
    _add(engine, "sue", "engineer")
    alerts.acknowledge_alert(actor=ENGINEER, alert_id=alert_id, comment="yours", owner="sue", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        assert s.get(AlertState, alert_id).acked_by == "sue"


def test_audit_filters_match_what_was_typed_literally(engine: Engine) -> None:
    from core.queries.audit import list_audit

    seed_minimal(engine, conversations=0)
    with read_session(engine) as s:
        rows, total = list_audit(s, actor=ADMIN, action="%")
        assert (rows, total) == ([], 0), "'%' is a character here, not a wildcard"
        assert list_audit(s, actor=ADMIN, action="see")[1] >= 1  # the seed's record, by prefix


def test_a_deploy_hook_failure_says_what_went_wrong(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import reset_settings
    from core.services import rollbacks

    for env, words in ((("DEPLOY_HOOK_COMMAND", "/nonexistent/hook"), "no such command /nonexistent/hook"),
                       (("DEPLOY_HOOK_URL", "http://127.0.0.1:1/hook"), "DEPLOY_HOOK_URL could not be reached"),
                       (("DEPLOY_HOOK_URL", "not-a-url"), "DEPLOY_HOOK_URL is not an http(s) URL")):
        monkeypatch.delenv("DEPLOY_HOOK_COMMAND", raising=False)
        monkeypatch.delenv("DEPLOY_HOOK_URL", raising=False)
        monkeypatch.setenv(*env)
        reset_settings()
        run = rollbacks.run_full_rollback(actor=ENGINEER, reason="bad release", uow=UnitOfWork(engine))
        assert run.state == "failed" and run.outcome == f"the deploy hook failed: {words}"
    reset_settings()


@pytest.mark.parametrize("argv, named", [(["agent-type"], "{disable,enable}"),
                                         (["rollback", "database"], "{request,approve,run,withdraw}")])
def test_a_missing_subcommand_is_named_by_its_choices(argv: list[str], named: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """It said 'the following arguments are required: t' (the name the code reads it under)."""
    from core.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and f"the following arguments are required: {named}" in capsys.readouterr().err


def test_the_cli_says_what_it_did_not_do(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """`activate --mode full --shops 1` ignored the shops without a word; a second revoke said 'revoked' again."""
    from core.cli import main
    from core.services import tokens

    seed_minimal(engine, conversations=0)
    _add(engine, "sue", "engineer")
    assert main(["activate", "--mode", "full", "--shops", "1", "--reason", "x"]) == 2
    assert "apply to --mode limited only; nothing changed" in capsys.readouterr().err
    tokens.create_token(actor=ADMIN, username="sue", uow=UnitOfWork(engine))
    with read_session(engine) as s:
        token_id = s.scalar(select(func.max(ApiToken.id)))
    assert main(["tokens", "revoke", str(token_id)]) == 0 and f"token {token_id} revoked" in capsys.readouterr().out
    assert main(["tokens", "revoke", str(token_id)]) == 0
    assert f"token {token_id} was revoked already" in capsys.readouterr().out


def test_a_second_kill_says_the_switch_was_already_engaged(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """It printed the state with the previous change's line, as if this one had been recorded."""
    from core.cli import main

    seed_minimal(engine, conversations=0)  # the system starts off: switch it on first
    assert main(["activate", "--mode", "full", "--reason", "on"]) == 0
    assert main(["kill", "--reason", "first"]) == 0
    first = capsys.readouterr().out
    assert "already engaged" not in first and "STOPPED" in first
    assert main(["kill", "--reason", "second"]) == 0
    assert "The kill switch was already engaged; nothing changed." in capsys.readouterr().out


def test_reasons_comments_notes_and_names_have_a_stated_length(engine: Engine,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The API and CLI attack: `kill --reason` took 100,000 characters into the audit trail and `status` printed
    them back (the API stops at 500); a review note was cut at 4,000 and a rule's name at 200 without a word."""
    from core.cli import main
    from core.queries.settings import get_activation_state
    from core.services import review

    seed_minimal(engine)
    long = "x" * 501
    assert main(["kill", "--reason", long]) == 2
    assert capsys.readouterr().err.strip() == "error: A reason can have at most 500 characters (got 501)."
    with read_session(engine) as s:
        assert get_activation_state(s).version == 1  # nothing changed
    rule_id = alerts.save_rule(actor=ENGINEER, spec={"key": "r1", "metric": "error_rate", "threshold": 0.1},
                               uow=UnitOfWork(engine))
    with UnitOfWork(engine) as uow:
        alert = AlertState(rule_id=rule_id, state="firing", firing_since=utcnow())
        uow.session.add(alert)
        uow.commit()
        alert_id = alert.id
    with pytest.raises(UserInputError, match="at most 500 characters"):
        alerts.acknowledge_alert(actor=ENGINEER, alert_id=alert_id, comment=long, uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="A review note can have at most 4000 characters"):
        review.submit_review(actor=SUPPORT, conversation_id=_a_conversation(engine), rating=3, note="n" * 4001,
                             uow=UnitOfWork(engine))
    with pytest.raises(UserInputError, match="A rule's name can have at most 200 characters"):
        alerts.save_rule(actor=ENGINEER, spec={"key": "long_name", "name": "n" * 201, "metric": "error_rate",
                                               "threshold": 1}, uow=UnitOfWork(engine))
    assert main(["kill", "--reason", "x" * 500]) == 0  # the limit itself is allowed


def _a_conversation(engine: Engine) -> int:
    from core.models import Conversation

    with read_session(engine) as s:
        return s.scalar(select(func.min(Conversation.id)).where(Conversation.shop_id.in_(SUPPORT.shop_ids)))
