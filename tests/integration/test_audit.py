"""The audit chain: intact when untouched; `audit verify` catches an edited, removed or forged record."""
from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from core import audit
from core.auth import system_actor
from core.cli import main
from core.uow import UnitOfWork


def write_records(engine: Engine, n: int) -> None:
    for i in range(n):
        with UnitOfWork(engine) as uow:
            audit.append(uow.session, actor=system_actor("test"), action="probe", target=f"t{i}",
                         before={"x": i}, after={"x": i + 1})
            uow.commit()


def tamper(engine: Engine, backend: str, sql: str) -> None:
    """Edit the log behind the application's back, as an attacker with database access would."""
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE agent_audit_log DISABLE TRIGGER agent_audit_log_no_change"))
            conn.execute(text(sql))
            conn.execute(text("ALTER TABLE agent_audit_log ENABLE TRIGGER agent_audit_log_no_change"))
        else:
            conn.execute(text("DROP TRIGGER agent_audit_log_no_update"))
            conn.execute(text("DROP TRIGGER agent_audit_log_no_delete"))
            conn.execute(text(sql))


def test_intact_chain_verifies(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    write_records(engine, 5)
    assert main(["audit", "verify"]) == 0
    assert "5 records" in capsys.readouterr().out


@pytest.mark.parametrize("sql, problem", [
    ("UPDATE agent_audit_log SET reason = 'nothing to see' WHERE seq = 3", "record #3 was edited"),
    ("DELETE FROM agent_audit_log WHERE seq = 2", "record #2 is missing"),
    ("DELETE FROM agent_audit_log WHERE seq = 5", "the newest records were removed"),
    ("UPDATE agent_audit_log SET actor = 'someone-else' WHERE seq = 1", "record #1 was edited"),
])
def test_tampering_is_detected(engine: Engine, backend: str, sql: str, problem: str,
                               capsys: pytest.CaptureFixture) -> None:
    write_records(engine, 5)
    tamper(engine, backend, sql)
    assert main(["audit", "verify"]) == 1
    assert problem in capsys.readouterr().out


def test_audit_list_filters_by_action(engine: Engine, capsys: pytest.CaptureFixture) -> None:
    write_records(engine, 3)
    with UnitOfWork(engine) as uow:
        audit.append(uow.session, actor=system_actor("test"), action="kill_switch.engage", target="agent_settings")
        uow.commit()
    assert main(["audit", "list", "--action", "kill_switch"]) == 0
    out = capsys.readouterr().out
    assert "kill_switch.engage" in out and "probe" not in out and out.strip().endswith("1 of 1 records")
