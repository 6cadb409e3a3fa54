"""9.8: `db restore` of a hand-written or damaged file: one sentence, nothing half-restored, never a switched-on system."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from core.cli import main
from core.db import read_session
from core.models import AgentSettings, AuditRecord, Conversation, User
from core.queries.settings import get_activation_state
from core.services import controls
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal

HEADER = {"format": "agentops-agent-tables", "version": 2, "revision": "0004", "written_at": "2026-11-26T10:00:00"}
FULL_ON = {"id": 1, "version": 99, "mode": "full", "allowed_shops": [], "allowed_agent_types": [], "shop_percent": None,
           "disabled_agent_types": [], "changed_by": "engineer", "changed_at": "2026-11-26T10:00:00+00:00",
           "reason": "last change by engineer"}


def backup_file(path: Path, lines: list, *, checksum: bool = True, raw: bytes | None = None) -> Path:
    """A backup as an attacker would write one: JSON lines, gzip, and (when asked) the format's checksum trailer."""
    body = raw if raw is not None else b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)
    if checksum:
        rows = max(0, len(lines) - 1)
        body += json.dumps({"end": True, "rows": rows, "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    path.write_bytes(gzip.compress(body))
    return path


def restore(path: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["db", "restore", str(path)])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.fixture
def stopped(engine: Engine) -> Engine:
    """A populated database whose kill switch an engineer has engaged."""
    seed_minimal(engine)
    controls.set_activation(actor=ROLE_ACTORS["engineer"], mode="full", reason="go", uow=UnitOfWork(engine))
    controls.engage_kill_switch(actor=ROLE_ACTORS["engineer"], reason="incident", uow=UnitOfWork(engine))
    return engine


def test_a_settings_only_backup_cannot_switch_a_stopped_system_on(stopped: Engine, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    path = backup_file(tmp_path / "on.jsonl.gz", [HEADER, {"t": "agent_settings", "r": FULL_ON}])
    code, out = restore(path, capsys)
    with read_session(stopped) as s:
        state = get_activation_state(s)
        rec = s.scalars(select(AuditRecord).where(AuditRecord.action == "db.restore")).one()
    assert (state.mode, state.running) == ("off", False)
    assert code == 0 and "OFF" in out and "mode full" in out
    assert rec.after["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rec.after["settings"] == {"in_backup": "full", "restored": "off"}


def test_a_backup_without_the_checksum_is_refused(stopped: Engine, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    path = backup_file(tmp_path / "plain.jsonl.gz", [HEADER, {"t": "agent_settings", "r": FULL_ON}], checksum=False)
    code, out = restore(path, capsys)
    assert code == 2 and "checksum" in out and out.count("\n") == 1
    with read_session(stopped) as s:
        assert s.get(AgentSettings, 1).mode == "off"


def _damaged(tmp_path: Path) -> dict[str, Path]:
    good = gzip.compress(b"".join(json.dumps(x).encode() + b"\n" for x in [HEADER] * 50))
    cases = {
        "truncated gzip": (tmp_path / "t.gz").write_bytes(good[: len(good) // 2]),
        "corrupt deflate": (tmp_path / "c.gz").write_bytes(good[:12] + b"\x00" * 40 + good[52:]),
        "not gzip": (tmp_path / "n.gz").write_bytes(b"hello, this is not a backup"),
        "empty": (tmp_path / "e.gz").write_bytes(b""),
    }
    files = {name: tmp_path / f"{name[0]}.gz" for name in cases}
    lines = {
        "non-UTF-8": [HEADER, b"\xff\xfe\xfa"],
        "null header": [None],
        "list header": [[HEADER]],
        "wrong format": [{**HEADER, "format": "something-else"}],
        "unknown version": [{**HEADER, "version": 99}],
        "non-dict row": [HEADER, ["agent_settings", FULL_ON]],
        "row without a table": [HEADER, {"r": FULL_ON}],
        "non-dict values": [HEADER, {"t": "agent_settings", "r": [1, 2]}],
        "bad date": [HEADER, {"t": "agent_settings", "r": {**FULL_ON, "changed_at": "yesterday"}}],
        "number as a date": [HEADER, {"t": "agent_settings", "r": {**FULL_ON, "changed_at": 12}}],
        "unknown column": [HEADER, {"t": "agent_settings", "r": {**FULL_ON, "is_admin": True}}],
        "user table": [HEADER, {"t": "console_users", "r": {"id": 99, "username": "mallory", "role": "admin"}}],
        "audit table": [HEADER, {"t": "agent_audit_log", "r": {"id": 99, "seq": 99}}],
        "not JSON": [HEADER, b"{not json"],
        "wrong type": [HEADER, {"t": "agent_settings", "r": {**FULL_ON, "version": "ninety-nine"}}],
    }
    for name, content in lines.items():
        files[name] = backup_file(tmp_path / f"{len(files)}.jsonl.gz", content)
    files["bad checksum"] = tmp_path / "bad-sum.jsonl.gz"
    files["bad checksum"].write_bytes(gzip.compress(json.dumps(HEADER).encode() + b"\n" + json.dumps(
        {"end": True, "rows": 0, "sha256": "0" * 64}).encode() + b"\n"))
    return files


def test_every_damaged_or_hostile_file_is_one_sentence_and_changes_nothing(stopped: Engine, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    with read_session(stopped) as s:
        before = (s.scalar(select(func.count()).select_from(Conversation)), s.get(AgentSettings, 1).version,
                  s.scalar(select(func.count()).select_from(User)))
    failures = {}
    for name, path in _damaged(tmp_path).items():
        code, out = restore(path, capsys)
        if code != 2 or not out.startswith("error: ") or out.count("\n") != 1 or "Traceback" in out:
            failures[name] = (code, out)
    assert failures == {}
    with read_session(stopped) as s:
        after = (s.scalar(select(func.count()).select_from(Conversation)), s.get(AgentSettings, 1).version,
                 s.scalar(select(func.count()).select_from(User)))
    assert after == before
