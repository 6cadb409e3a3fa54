"""A click that lands while a form's action runs: Streamlit stops that run at its next point of contact (any
`st.*` call, any read or write of `st.session_state`) and runs the page again for the new click. When the stop
came after the action's commit, the page lost the sentence saying it went through and kept the form filled in,
inviting the same action a second time.

Each test lets the real service commit, then asks for a rerun the way a browser's second click does, and checks
what the person sees on the run that follows: the sentence, and a form drawn afresh."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from core.db import read_session
from core.models import AuditRecord, ReviewRecord
from tests.dashboard.conftest import in_form, open_app, shown, sign_in, submit
from tests.dashboard.test_alerts_page import firing, open_alerts, webhook  # noqa: F401 - fixtures
from tests.dashboard.test_control_pages import PASSWORD


def click_lands_during(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """MODULE.NAME runs for real, and a second click arrives before it returns (after its commit)."""
    real: Callable[..., Any] = getattr(module, name)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        ctx = get_script_run_ctx()
        assert ctx is not None, "the service runs in the page's script thread"
        # What a browser sends for a click elsewhere on the page: same page and link, the widgets' values stay,
        # no trigger is set.
        ctx.script_requests.request_rerun(RerunData(widget_states=WidgetStates(), query_string=ctx.query_string,
                                                    page_script_hash=ctx.page_script_hash))
        return result

    monkeypatch.setattr(module, name, interrupted)


def toasts(at: Any) -> list[str]:
    return [t.value for t in at.toast]


def test_a_pause_interrupted_after_its_commit_still_says_so_and_empties_the_form(
        console_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.services import controls

    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/controls.py").run()
    choice = in_form(at, "instance", "Instance")
    first = choice.options[0]
    choice.set_value(int(first.split()[0].lstrip("#")))
    in_form(at, "instance", "Reason").input("shop asked for a pause")
    click_lands_during(monkeypatch, controls, "set_instance_status")
    at = submit(at, "instance")
    assert not at.exception and not at.error
    assert toasts(at) == [f"Instance {first} is paused now."]
    assert in_form(at, "instance", "Reason").value == "", "the form is drawn afresh, nothing to click twice"
    with read_session(console_db) as s:
        assert s.scalar(select(func.count()).where(AuditRecord.action == "instance.pause")) == 1


def test_an_added_user_interrupted_after_the_commit_is_said_and_the_form_emptied(
        console_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.services import users

    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/users.py").run()
    for label, value in {"User name": "rosa", "Display name": "Rosa Diaz", PASSWORD: "a long enough password"
                         }.items():
        in_form(at, "add_user", label).input(value)
    click_lands_during(monkeypatch, users, "add_user")
    at = submit(at, "add_user")
    assert not at.exception and not at.error
    assert any("rosa" in t for t in toasts(at)), toasts(at)
    assert in_form(at, "add_user", "User name").value == ""


def test_a_review_interrupted_after_its_commit_is_said_and_its_form_emptied(
        console_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.models import Conversation
    from core.services import review as rs

    with read_session(console_db) as s:
        conv_id = s.scalars(select(Conversation.id).where(Conversation.status == "completed",
                                                          Conversation.shop_id == 1).order_by(Conversation.id)).first()
    at = sign_in(open_app(), "engineer")
    at.query_params["conversation"] = str(conv_id)
    at.switch_page("../pages/conversations.py").run()
    form = next(b.form_id for b in at.button if (b.form_id or "").startswith(f"review_{conv_id}"))
    next(r for r in at.radio if r.form_id == form).set_value(2)
    next(w for w in at.text_area if w.form_id == form).input("slow to confirm the time")
    click_lands_during(monkeypatch, rs, "submit_review")
    at = submit(at, form)
    assert not at.exception and not at.error
    assert toasts(at) == [f"Review of conversation {conv_id} saved."]
    fresh = next(b.form_id for b in at.button if (b.form_id or "").startswith(f"review_{conv_id}"))
    assert fresh != form and [w.value for w in at.text_area if w.form_id == fresh] == [""]
    with read_session(console_db) as s:
        assert s.scalar(select(func.count()).select_from(ReviewRecord)) == 1


def test_a_silence_interrupted_after_its_commit_is_said_above_the_alerts(
        firing: Engine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - the fixture
    """The page's own sentence (set in the session for the next run) comes through an interruption too."""
    from core.models import AlertSilence
    from core.services import alerts

    at = open_alerts("engineer")
    in_form(at, "alert_silence", "Matchers (e.g. rule=error_rate, shop=1)").input("rule=t_unauth")
    in_form(at, "alert_silence", "Reason (required)").input("planned maintenance")
    click_lands_during(monkeypatch, alerts, "create_silence")
    at = submit(at, "alert_silence")
    assert not at.exception and not at.error
    with read_session(firing) as s:
        silence_id = s.scalars(select(AlertSilence.id)).one()
    assert any(f"Silence {silence_id} created; it matches 1 alert now." in m for m in shown(at.success))
    assert in_form(at, "alert_silence", "Reason (required)").value == ""


def test_a_test_notification_interrupted_after_sending_still_shows_what_happened_to_each(
        firing: Engine, webhook: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - the fixtures
    """Its result is a sentence and a table of the contact points: both were drawn after the send, so a click
    during it left the person with no word on whether anything was delivered."""
    from core.services import alerts

    at = open_alerts("engineer")
    click_lands_during(monkeypatch, alerts, "send_test_notification")
    at = submit(at, "alert_test")
    assert not at.exception and not at.error
    assert [s.value for s in at.success] == ["Test notification delivered to 1 of 1 contact points."]
    results = at.dataframe[3].value
    assert (list(results["contact point"]), list(results["delivered"])) == (["webhook"], [True])
    assert len(webhook.bodies()) == 1, "sent once"


def test_a_database_rollback_run_interrupted_after_its_commit_still_says_how_to_restore(
        console_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its action runs under a spinner, whose closing is itself a point where a click may stop the run."""
    from core.services import rollbacks

    at = sign_in(open_app(), "engineer")
    at.switch_page("../pages/rollbacks.py").run()
    in_form(at, "database", "Type the environment name (development) to confirm").input("development")
    in_form(at, "database", "Reason").input("drill")
    at = submit(at, "database")
    click_lands_during(monkeypatch, rollbacks, "execute_database_rollback")
    at = next(b for b in at.button if (b.key or "").startswith("run_")).click().run()
    assert not at.exception
    assert any("Restore with `python -m core db restore PATH`" in s or "Restore with python -m core db restore PATH"
               in s for s in shown(at.success)), shown(at.success)


def test_checks_run_all_interrupted_after_they_are_recorded_still_say_how_many(
        console_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run-all panel closes after the action, a point where a click may stop the run."""
    from core.checklist.catalogue import ITEMS
    from core.services import checklist as svc
    from tests.dashboard.test_checklist_page import start

    start(console_db)
    at = sign_in(open_app(), "admin")
    at.switch_page("../pages/checklist.py").run()
    click_lands_during(monkeypatch, svc, "run_checks")
    at = submit(at, "checklist_run_all")
    assert not at.exception
    said = [t for t in toasts(at) if "checks run and recorded" in t]
    assert len(said) == 1 and said[0].startswith(f"{sum(i.automated for i in ITEMS)} checks run and recorded; ")
