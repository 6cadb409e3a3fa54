"""The audit chain's HMAC keys: the current one (AUDIT_KEY, or a generated development key) and older ones.

Records carry the id of the key that sealed them, so a key can be rotated: the new key goes in AUDIT_KEY, the old
one moves to AUDIT_PREVIOUS_KEYS, and the next record written is a keyed "audit.rekey" record."""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.config import get_settings

KEY_ID_LENGTH = 16


def key_id(key: str) -> str:
    """A short public name of KEY (a hash of it; it reveals nothing that helps forge a record)."""
    return hashlib.sha256(b"agentops-audit-key-id:" + key.strip().encode()).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class AuditKeys:
    current_id: str
    by_id: dict[str, bytes]

    @property
    def current(self) -> bytes:
        """The key that seals new records."""
        return self.by_id[self.current_id]


def audit_keys() -> AuditKeys:
    """The keys in force, from the settings (development: generated on first use into AUDIT_KEY_FILE, 0600)."""
    s = get_settings()
    current = s.audit_key.get_secret_value() if s.audit_key else development_key(s.local_file("audit_key_file"))
    previous = s.audit_previous_keys.get_secret_value() if s.audit_previous_keys else ""
    return _keys(current.strip(), previous)


@lru_cache(maxsize=8)
def _keys(current: str, previous: str) -> AuditKeys:
    keys = {key_id(k): k.strip().encode() for k in previous.split(",") if k.strip()}
    keys[key_id(current)] = current.encode()
    return AuditKeys(key_id(current), keys)


def development_key(path: Path) -> str:
    """The development key in PATH, created (0600) by whichever process needs it first."""
    try:
        return path.read_text().strip() or _create(path)
    except FileNotFoundError:
        return _create(path)


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)  # atomic: when two processes race, the first link wins and both read it
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
