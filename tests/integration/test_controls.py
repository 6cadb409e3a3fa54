"""Controls through the service functions: the role table of the design, audited either way."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select

from core.db import read_session
from core.errors import Conflict, PermissionDenied, UserInputError
from core.models import AuditRecord
from core.queries.settings import get_activation_state
from core.services import controls
from core.uow import UnitOfWork
from tests.conftest import audit_head_seq
from tests.support.data import ROLE_ACTORS, seed_minimal

CONTROL_ALLOWED = {"engineer", "admin"}


def last_audit(engine: Engine) -> AuditRecord:
    with read_session(engine) as s:
        return s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()


@pytest.mark.parametrize("role", sorted(ROLE_ACTORS))
def test_kill_switch_by_role(engine: Engine, role: str) -> None:
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(engine))
    before = audit_head_seq(engine)
    actor = ROLE_ACTORS[role]
    if role in CONTROL_ALLOWED:
        state = controls.engage_kill_switch(actor=actor, reason="bad replies", uow=UnitOfWork(engine))
        assert state.mode == "off" and not state.running
        rec = last_audit(engine)
        assert (rec.action, rec.outcome, rec.actor, rec.reason) == ("kill_switch.engage", "ok", actor.username, "bad replies")
        assert rec.before["mode"] == "full" and rec.after["mode"] == "off"
    else:
        with pytest.raises(PermissionDenied):
            controls.engage_kill_switch(actor=actor, reason="x", uow=UnitOfWork(engine))
        rec = last_audit(engine)
        assert (rec.action, rec.outcome, rec.actor) == ("kill_switch.engage", "refused", actor.username)
        with read_session(engine) as s:
            assert get_activation_state(s).mode == "full"
    assert audit_head_seq(engine) == before + 1


def test_limited_activation_scope(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    state = controls.set_activation(actor=ROLE_ACTORS["engineer"], mode="limited", shops=[1],
                                    agent_types=["rebooking", "birthday_wishes"], reason="staging step 3",
                                    uow=UnitOfWork(engine))
    assert state.allows(shop_id=1, agent_type="rebooking")
    assert not state.allows(shop_id=2, agent_type="rebooking")
    assert not state.allows(shop_id=1, agent_type="upsell")
    state = controls.set_agent_type_enabled(actor=ROLE_ACTORS["engineer"], agent_type="rebooking", enabled=False,
                                            reason="poor replies", uow=UnitOfWork(engine))
    assert not state.allows(shop_id=1, agent_type="rebooking")
    # 0 % and no shop: 'RUNNING (mode limited) shops: -; plus 0% of shops', nothing in scope (a CLI review).
    with pytest.raises(UserInputError, match="^Limited mode needs at least one shop or a percentage of shops above 0"):
        controls.set_activation(actor=ROLE_ACTORS["engineer"], mode="limited", shop_percent=0, reason="x",
                                uow=UnitOfWork(engine))
    assert controls.set_activation(actor=ROLE_ACTORS["engineer"], mode="limited", shops=[1], shop_percent=0,
                                   reason="one shop, no share", uow=UnitOfWork(engine)).allows(shop_id=1, agent_type="upsell")


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "sideways"}, "Mode must be one of"),
    ({"mode": "limited"}, "needs at least one shop"),
    ({"mode": "limited", "shops": [999]}, "No shop with id 999"),
    ({"mode": "limited", "shops": [1], "agent_types": ["teleport"]}, "Unknown agent type teleport"),
    ({"mode": "full", "reason": "  "}, "A reason is required"),
])
def test_bad_activation_input(engine: Engine, kwargs: dict, message: str) -> None:
    seed_minimal(engine, conversations=0)
    kwargs = {"reason": "r", **kwargs}
    with pytest.raises(UserInputError, match=message):
        controls.set_activation(actor=ROLE_ACTORS["engineer"], uow=UnitOfWork(engine), **kwargs)


def test_unchanged_state_writes_no_record_and_keeps_version(engine: Engine) -> None:
    first = controls.engage_kill_switch(actor=ROLE_ACTORS["engineer"], reason="already off", uow=UnitOfWork(engine))
    seq = audit_head_seq(engine)
    again = controls.engage_kill_switch(actor=ROLE_ACTORS["engineer"], reason="again", uow=UnitOfWork(engine))
    assert again.version == first.version
    assert audit_head_seq(engine) == seq


def test_stale_version_is_a_conflict(engine: Engine) -> None:
    state = controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(engine))
    controls.engage_kill_switch(actor=ROLE_ACTORS["engineer"], reason="stop", uow=UnitOfWork(engine),
                                expected_version=state.version)
    with pytest.raises(Conflict, match="changed to version"):
        controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go again", uow=UnitOfWork(engine),
                                expected_version=state.version)


def test_two_engineers_at_once_produce_one_consistent_state(engine: Engine) -> None:
    state = controls.set_activation(actor=ROLE_ACTORS["admin"], mode="full", reason="go", uow=UnitOfWork(engine))
    seq, results, errors = audit_head_seq(engine), [], []
    barrier = threading.Barrier(2)

    def click(name: str) -> None:
        barrier.wait()
        try:
            results.append(controls.engage_kill_switch(actor=ROLE_ACTORS[name], reason=name, uow=UnitOfWork(engine),
                                                       expected_version=state.version))
        except Conflict as exc:
            errors.append(exc)

    threads = [threading.Thread(target=click, args=(n,)) for n in ("engineer", "admin")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with read_session(engine) as s:
        final = get_activation_state(s)
    assert final.mode == "off" and final.version == state.version + 1
    assert audit_head_seq(engine) == seq + 1  # one change, one record
    assert len(results) + len(errors) == 2 and len(errors) <= 1


def test_cli_kill_activate_and_agent_type(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    """The checklist's activation and rollback by hand, as the README lists them."""
    from core.cli import main

    seed_minimal(engine, conversations=0)
    assert main(["activate", "--mode", "limited", "--shops", "1,2", "--agent-types", "rebooking",
                 "--reason", "staging step 3"]) == 0
    out = capsys.readouterr().out
    assert "RUNNING (mode limited" in out and "shops: 1, 2" in out and "agent types: rebooking" in out
    assert main(["activate", "--mode", "limited", "--percent", "25", "--reason", "widen"]) == 0
    assert "plus 25% of shops" in capsys.readouterr().out
    assert main(["activate", "--mode", "limited", "--percent", "99999999999999999999", "--reason", "x"]) == 2
    assert "(got 99999999999999999999)" in capsys.readouterr().err  # as typed, not 1e+20
    assert main(["agent-type", "disable", "upsell", "--reason", "off-brand"]) == 0
    assert "disabled types: upsell" in capsys.readouterr().out
    assert main(["agent-type", "enable", "upsell", "--reason", "fixed"]) == 0
    assert main(["kill", "--reason", "incident"]) == 0
    assert "STOPPED (mode off" in capsys.readouterr().out
    with read_session(engine) as s:
        actions = list(s.scalars(select(AuditRecord.action).where(AuditRecord.source == "cli").order_by(AuditRecord.seq)))
    assert actions[-5:] == ["activation.limited", "activation.limited", "agent_type.disable", "agent_type.enable",
                            "kill_switch.engage"]
    assert main(["activate", "--mode", "limited", "--reason", "no scope"]) == 2
    assert main(["agent-type", "disable", "teleport", "--reason", "x"]) == 2


def test_cli_refusal_is_exit_code_3_and_audited(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    from core.auth import system_actor
    from core.cli import main
    from core.services import users

    seed_minimal(engine, conversations=0)
    users.add_user(actor=system_actor("t"), username="sam", password="long enough pw", role="support", shops=[1],
                   uow=UnitOfWork(engine))
    assert main(["--actor", "sam", "kill", "--reason", "not mine to pull"]) == 3
    assert capsys.readouterr().err == ("error: sam (support) may not turn the agent system off (agent_settings): that "
                                       "takes the control system permission (engineer, admin).\n")  # and whom to ask
    rec = last_audit(engine)
    assert (rec.actor, rec.action, rec.outcome) == ("sam", "kill_switch.engage", "refused")


def test_rollups_rebuild_is_a_checked_audited_service(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    from sqlalchemy import delete, func

    from core.auth import system_actor
    from core.cli import main
    from core.models import AgentMetric, AgentMetricHourlyByType
    from core.services import users

    def created() -> int:  # the rows not folded yet and the closed hours folded per type
        with read_session(engine) as s:
            return sum(s.scalar(select(func.coalesce(func.sum(m.created), 0))) for m in (AgentMetric,
                                                                                        AgentMetricHourlyByType))

    seed_minimal(engine)
    users.add_user(actor=system_actor("t"), username="sam", password="long enough pw", role="support", shops=[1],
                   uow=UnitOfWork(engine))
    before = created()
    with engine.begin() as conn:
        conn.execute(delete(AgentMetric))
        conn.execute(delete(AgentMetricHourlyByType))
    assert created() == 0
    assert main(["--actor", "sam", "rollups", "rebuild"]) == 3
    assert last_audit(engine).outcome == "refused"
    assert main(["rollups", "rebuild", "--since", "yesterday"]) == 2
    assert main(["rollups", "rebuild", "--since", "2999-12-31"]) == 2  # it said "rebuilt -6 rollup rows"
    assert "--since 2999-12-31 is in the future" in capsys.readouterr().err
    assert main(["rollups", "rebuild"]) == 0
    assert "rebuilt" in capsys.readouterr().out
    assert created() == before == 60
    rec = last_audit(engine)
    assert (rec.action, rec.outcome, rec.target) == ("rollups.rebuild", "ok", "all")


def test_enqueue_says_when_the_switch_holds_the_new_conversations_back(engine: Engine,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """Queued behind a switch that is off, conversations only looked like a stuck worker."""
    from core.cli import main

    seed_minimal(engine, conversations=0)
    assert main(["kill", "--reason", "before the trial"]) == 0
    capsys.readouterr()
    assert main(["conversations", "enqueue", "--count", "3"]) == 0
    err = capsys.readouterr().err
    assert err.strip() == "warning: 3 of 3 will wait: the agent system is off; they start once the switch allows them."
    assert main(["activate", "--mode", "limited", "--shops", "1", "--reason", "one shop"]) == 0
    assert main(["conversations", "enqueue", "--count", "2", "--shop", "2"]) == 0
    assert "warning: 2 of 2 will wait: the switch is in limited mode;" in capsys.readouterr().err
    assert main(["conversations", "enqueue", "--count", "2", "--shop", "1"]) == 0
    assert capsys.readouterr().err.strip() == (  # allowed by the switch, but nothing runs them
        "warning: 2 of 2 will wait: no worker is alive (none has sent a heartbeat in the last 30 s); "
        "they start once one runs (python -m core worker).")
    from core.models import WorkerHeartbeat

    with UnitOfWork(engine) as uow:
        uow.session.add(WorkerHeartbeat(id="w1", host="h", pid=1))
        uow.commit()
    assert main(["conversations", "enqueue", "--count", "2", "--shop", "1"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["conversations", "enqueue", "--count", "2", "--shop", "999"]) == 2
    assert capsys.readouterr().err.strip() == "error: No shop with id 999."


def test_enqueue_and_status_go_by_the_live_workers_own_switch(engine: Engine, capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The warning and `core status` read the CLI's own AGENT_SYSTEM_ENABLED; the workers' may say otherwise."""
    import json

    from core.cli import main
    from core.config import reset_settings
    from core.models import WorkerHeartbeat

    seed_minimal(engine, conversations=0)
    assert main(["activate", "--mode", "full", "--reason", "all shops"]) == 0
    with UnitOfWork(engine) as uow:
        uow.session.add(WorkerHeartbeat(id="w1", host="h", pid=1, env_enabled=False))
        uow.commit()
    capsys.readouterr()
    assert main(["conversations", "enqueue", "--count", "2"]) == 0
    assert capsys.readouterr().err.strip() == ("warning: 2 of 2 will wait: every live worker (1) runs with "
                                               "AGENT_SYSTEM_ENABLED=false; they start once the switch allows them.")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("agent system: STOPPED (mode full")
    assert ("workers: every live worker (1) runs with AGENT_SYSTEM_ENABLED=false: nothing starts, whatever is set "
            "here") in out
    assert main(["status", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["running"], got["workers_live"], got["workers_env_off"]) == (False, 1, 1)
    # The other way round: the CLI's environment says off, the live worker says on, and the worker decides.
    with UnitOfWork(engine) as uow:
        uow.session.get(WorkerHeartbeat, "w1").env_enabled = True
        uow.commit()
    monkeypatch.setenv("AGENT_SYSTEM_ENABLED", "false")
    reset_settings()
    assert main(["conversations", "enqueue", "--count", "2"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["status"]) == 0
    assert capsys.readouterr().out.startswith("agent system: RUNNING (mode full")
