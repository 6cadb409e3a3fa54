"""Checkpoints of the audit chain's head, kept outside the database in an append-only file.

Whoever can write to the database can delete the newest records and move the head back consistently; only a copy
of the head kept elsewhere shows that the log once reached further. `audit verify` writes one after each intact
check, and `anchor_head` is cheap enough for a prober to call every run."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from core.config import get_settings
from core.db import read_session
from core.models import AuditHead, utcnow

TAIL_BLOCK = 8192


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str

    def describe(self) -> str:
        """'#1,204 (9f8e7d6c5b4a…) anchored 2026-11-26T10:00:00+00:00'."""
        return f"#{self.seq:,} ({self.hash[:12]}…) anchored {self.at}"


def database_name(engine: Engine) -> str:
    """Which database an anchor belongs to (one file may serve several in development)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{Path(url.database or ':memory:').resolve()}"
    return f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"


def anchor_path() -> Path:
    """Where the anchors are kept (AUDIT_ANCHOR_PATH)."""
    return get_settings().local_file("audit_anchor_path")


def last_anchor(engine: Engine, path: Path | None = None) -> Anchor | None:
    """The newest anchor written for ENGINE's database, read from the end of the file."""
    path, name = path or anchor_path(), database_name(engine)
    for line in _lines_backwards(path):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("database") == name:
            return Anchor(int(item["seq"]), str(item["hash"]), str(item.get("at", "")))
    return None


def write_anchor(engine: Engine, *, seq: int, hash: str, path: Path | None = None) -> Anchor:
    """Append a checkpoint (the file is created 0600 and only ever appended to)."""
    path = path or anchor_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    anchor = Anchor(seq, hash, utcnow().isoformat(timespec="seconds"))
    line = json.dumps({"database": database_name(engine), "seq": seq, "hash": hash, "at": anchor.at}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return anchor


def anchor_head(engine: Engine, path: Path | None = None) -> str:
    """Anchor the current head if it moved forward since the last anchor; a sentence saying what happened.

    Cheap (one indexed read and a file tail): meant for the prober's loop. A head behind its anchor is not
    anchored over: that is a rewind, and `audit verify` reports it."""
    with read_session(engine) as s:
        seq, last_hash = s.execute(select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    previous = last_anchor(engine, path)
    if previous is not None and seq < previous.seq:
        return f"audit head #{seq:,} is behind its anchor {previous.describe()}: run `python -m core audit verify`"
    if previous is not None and seq == previous.seq:
        return f"audit head #{seq:,} already anchored"
    write_anchor(engine, seq=seq, hash=last_hash, path=path)
    return f"audit head #{seq:,} anchored"


def _lines_backwards(path: Path):  # noqa: ANN202 - a generator of str
    """The file's lines, last first, reading blocks from the end (the file only grows)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(0, os.SEEK_END)
        pos, rest = f.tell(), b""
        while pos > 0:
            step = min(TAIL_BLOCK, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines.pop(0)
            for line in reversed(lines):
                if line.strip():
                    yield line.decode("utf-8", "replace")
        if rest.strip():
            yield rest.decode("utf-8", "replace")
