"""Every check function, by the name the catalogue uses."""
from __future__ import annotations

from collections.abc import Callable

from core.checklist.checks import (
    access,
    activation,
    database,
    http,
    impact,
    integration,
    logs,
    monitoring,
    rollback,
    settings,
    windows,
)
from core.checklist.outcome import CheckContext, Outcome

CheckFn = Callable[[CheckContext], Outcome]
MODULES = (settings, database, http, access, activation, integration, monitoring, windows, logs, rollback, impact)
REGISTRY: dict[str, CheckFn] = {name: getattr(module, name) for module in MODULES for name in dir(module)
                                if name.startswith("check_") and getattr(getattr(module, name), "__module__", "") == module.__name__}
