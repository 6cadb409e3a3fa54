"""9.7: where the audit key comes from, how it is rotated, and an upgraded (unkeyed) chain staying intact."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select, text

from core import audit
from core.auth import system_actor
from core.cli import main
from core.config import get_settings, reset_settings
from core.db import read_session
from core.migrate import alembic_config, upgrade_to_head
from core.models import AuditRecord, utcnow
from core.uow import UnitOfWork

KEY_A, KEY_B = "a" * 40, "b" * 40


def write(engine: Engine, n: int, action: str = "probe") -> None:
    for i in range(n):
        with UnitOfWork(engine) as uow:
            audit.append(uow.session, actor=system_actor("test"), action=action, target=str(i))
            uow.commit()


def use_keys(monkeypatch: pytest.MonkeyPatch, current: str, previous: str | None = None) -> None:
    monkeypatch.setenv("AUDIT_KEY", current)
    if previous is None:
        monkeypatch.delenv("AUDIT_PREVIOUS_KEYS", raising=False)
    else:
        monkeypatch.setenv("AUDIT_PREVIOUS_KEYS", previous)
    reset_settings()


def test_development_generates_a_private_key_file_shared_by_every_process(engine: Engine, db_url: str,
                                                                          backend: str,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    """The key of a SQLite database sits beside its file, so a command run from any folder verifies the chain (from
    another folder it made a key of its own and said "audit chain broken"); PostgreSQL's stays in ./var."""
    monkeypatch.delenv("AUDIT_KEY")
    reset_settings()
    write(engine, 2)
    key_file = tmp_path / "var" / "audit.key" if backend == "postgresql" else tmp_path / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) == 64
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "core", "audit", "verify"], capture_output=True, text=True,
                          env=env, cwd=tmp_path if backend == "postgresql" else elsewhere, timeout=60)
    assert proc.returncode == 0 and "audit chain intact: 2 records" in proc.stdout, proc.stdout + proc.stderr
    assert key_file.read_text().strip() not in proc.stdout + proc.stderr
    assert not (elsewhere / "var").exists()
    assert (key_file.parent / "audit-anchors.jsonl").is_file()  # the anchors it wrote sit beside the key


def test_outside_development_a_missing_key_is_a_settings_error(tmp_path: Path) -> None:
    env = {"ENVIRONMENT": "staging", "COOKIE_KEY": "a-real-staging-cookie-secret", "PATH": "/usr/bin:/bin",
           "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    proc = subprocess.run([sys.executable, "-m", "core", "status"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: AUDIT_KEY: required outside development") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "var" / "audit.key").exists()


def test_the_key_is_shown_only_by_its_id(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    use_keys(monkeypatch, KEY_A, KEY_B)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "aaaa" not in out and "bbbb" not in out
    assert "AUDIT_KEY" in out and "key id " in out


def test_a_rotated_key_keeps_the_chain_verifiable(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    use_keys(monkeypatch, KEY_A)
    write(engine, 3)
    use_keys(monkeypatch, KEY_B, previous=KEY_A)
    write(engine, 2)
    with read_session(engine) as s:
        actions = list(s.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)))
    assert actions == ["probe"] * 3 + ["audit.rekey"] + ["probe"] * 2
    assert main(["audit", "verify"]) == 0
    use_keys(monkeypatch, KEY_B)  # the old key forgotten: its records can no longer be checked
    assert main(["audit", "verify"]) == 1
    assert "is sealed with key id" in capsys.readouterr().out


def test_outside_development_a_mistyped_key_writes_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """One command run in staging with the wrong AUDIT_KEY re-keyed the chain without a word, and every later
    `audit verify` with the right key said 'audit chain broken' (a CLI review). Now nothing is written."""
    from core.errors import UserInputError

    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("COOKIE_KEY", "a-real-staging-cookie-secret")
    use_keys(monkeypatch, KEY_A)
    write(engine, 2)
    use_keys(monkeypatch, KEY_B)
    with pytest.raises(UserInputError, match="^AUDIT_KEY is not the key that sealed the audit trail's last record"):
        write(engine, 1)
    use_keys(monkeypatch, KEY_A)
    with read_session(engine) as s:
        assert audit.verify_chain(s).ok
    use_keys(monkeypatch, KEY_B, previous=KEY_A)  # a rotation, done as the README says: fine
    write(engine, 1)
    with read_session(engine) as s:
        assert audit.verify_chain(s).checked == 4  # two, the rekey record, one


def test_an_unkeyed_chain_from_before_the_upgrade_stays_intact(engine: Engine, backend: str,
                                                               capsys: pytest.CaptureFixture) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    legacy_hash = "0" * 64
    with engine.begin() as conn:  # three records as the code before 0004 wrote them (plain sha256, no key id)
        for seq in (1, 2, 3):
            rec = AuditRecord(seq=seq, created_at=utcnow(), actor="old", actor_role="system", source="cli",
                              action="kill_switch.engage", target="agent_settings", outcome="ok", reason="",
                              before=None, after=None, prev_hash=legacy_hash, key_id=None)
            rec.hash = audit.record_hash(rec, keys=None)
            conn.execute(text("INSERT INTO agent_audit_log (seq, created_at, actor, actor_role, source, action, target,"
                              " outcome, reason, prev_hash, hash) VALUES (:seq, :c, 'old', 'system', 'cli',"
                              " 'kill_switch.engage', 'agent_settings', 'ok', '', :p, :h)"),
                         {"seq": seq, "c": rec.created_at if backend == "postgresql" else
                          rec.created_at.replace(tzinfo=None).isoformat(sep=" "), "p": legacy_hash, "h": rec.hash})
            legacy_hash = rec.hash
        conn.execute(text("UPDATE agent_audit_head SET seq = 3, last_hash = :h"), {"h": legacy_hash})
    upgrade_to_head(engine)
    assert main(["audit", "verify"]) == 0  # nothing written since the upgrade: still the old chain, intact
    write(engine, 1)
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit chain intact: 5 records (3 from before keying" in out
    with read_session(engine) as s:
        rekey = s.scalars(select(AuditRecord).where(AuditRecord.seq == 4)).one()
    assert (rekey.action, rekey.prev_hash, rekey.before["key_id"]) == ("audit.rekey", legacy_hash, "unkeyed sha256")


def test_metrics_with_the_head_parse_as_prometheus_text(engine: Engine) -> None:
    from fastapi.testclient import TestClient

    from core.api import create_app

    write(engine, 1)
    body = TestClient(create_app(engine=engine)).get("/metrics").text
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {"agentops_audit_head_seq", "agentops_audit_head_hash_prefix", "agentops_database_up"} <= names
    assert os.environ["AUDIT_KEY"] not in body and get_settings().audit_key is not None
