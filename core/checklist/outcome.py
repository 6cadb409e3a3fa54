"""What a check hands back, and the context it runs in."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from core.auth import Actor
from core.config import Settings

CHECK_STATUSES = ("pass", "warn", "fail", "waiting")


@dataclass(frozen=True)
class Outcome:
    """A check's verdict and what it measured: `measured` says what, `value` the figure, `detail` one sentence."""

    status: str  # pass | warn | fail | waiting
    measured: str
    value: Any = None
    detail: str = ""
    lines: tuple[str, ...] = ()  # e.g. the log lines that matched

    def evidence(self) -> dict[str, Any]:
        """The JSON stored with the result (when and how long are added by the runner)."""
        out: dict[str, Any] = {"measured": self.measured, "value": self.value, "detail": self.detail}
        if self.lines:
            out["lines"] = list(self.lines)
        return out


def passed(measured: str, value: Any = None, detail: str = "") -> Outcome:
    """A passing outcome."""
    return Outcome("pass", measured, value, detail)


def warned(measured: str, value: Any = None, detail: str = "") -> Outcome:
    """A warning: not blocking, but a person should look."""
    return Outcome("warn", measured, value, detail)


def waiting(measured: str, detail: str) -> Outcome:
    """Nothing to measure yet (a window not open, a release not marked deployed): neither done nor failed."""
    return Outcome("waiting", measured, None, detail)


def failed(measured: str, value: Any = None, detail: str = "", lines: tuple[str, ...] = ()) -> Outcome:
    """A failing outcome."""
    return Outcome("fail", measured, value, detail, lines)


def verdict(ok: bool, measured: str, value: Any = None, detail: str = "") -> Outcome:
    """pass when OK, else fail, with the same evidence."""
    return Outcome("pass" if ok else "fail", measured, value, detail)


@dataclass
class CheckContext:
    """Everything a check may use: the database, settings, the run's environment and deployment time, who acts."""

    engine: Engine
    settings: Settings
    actor: Actor
    environment: str
    release: str
    deployed_at: datetime | None = None
    confirm: str | None = None  # typed confirmation (the environment's name) for the kill-switch dry run in production
    history: Callable[[str], list[dict[str, Any]]] = field(default=lambda _item: [])  # earlier results of an item

    @property
    def api(self) -> str:
        """The configured API base URL, without a trailing slash."""
        return self.settings.api_base_url.rstrip("/")
