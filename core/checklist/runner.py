"""Runs checks: each in its own thread with a time limit, dependencies first, never letting an exception out.

A check that cannot reach its target (refused connection, missing table, a bug) fails with the reason as its
evidence; one that runs past its limit fails saying so (its thread is left to finish on its own)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy.exc import SQLAlchemyError

from core.checklist.catalogue import Item
from core.checklist.checks import REGISTRY
from core.checklist.outcome import CheckContext, Outcome, failed
from core.config import mask_secrets_in, mask_urls_in_text
from core.errors import AgentOpsError, describe_database_error, first_line
from core.models import utcnow

# Statuses that let a dependent item go ahead.
SATISFIED = frozenset({"pass", "warn", "done", "waived"})
# The rate-limit check spends a request budget; it runs after the checks that need one.
RUN_LAST = frozenset({"check_rate_limit"})


@dataclass(frozen=True)
class ItemResult:
    item_id: str
    kind: str  # check | blocked
    status: str
    evidence: dict[str, Any] = field(default_factory=dict)
    duration_ms: float | None = None


def describe_failure(exc: BaseException) -> str:
    """One sentence for what stopped a check (secrets in URLs masked)."""
    if isinstance(exc, requests.ConnectionError):
        text = f"cannot reach the target ({type(exc).__name__}): is it running, and is the configured URL right?"
    elif isinstance(exc, requests.Timeout):
        text = "the target did not answer in time"
    elif isinstance(exc, requests.RequestException):
        text = f"HTTP request failed: {first_line(exc)}"
    elif isinstance(exc, SQLAlchemyError):
        text = describe_database_error(exc)
    elif isinstance(exc, AgentOpsError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {first_line(exc)}"
    return mask_urls_in_text(text)


def timeout_for(item: Item, ctx: CheckContext) -> float:
    """The item's time limit: its own for the synthetic conversation, the configured one for the rest."""
    if item.check == "check_synthetic_conversation":
        return ctx.settings.checklist_synthetic_timeout_seconds + 5
    return ctx.settings.checklist_item_timeout_seconds


def run_check(item: Item, ctx: CheckContext) -> ItemResult:
    """Run ITEM's check within its time limit; whatever happens, a result with evidence comes back."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = REGISTRY[item.check](ctx)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes evidence, never a traceback
            box["outcome"] = failed("check could not run", None, describe_failure(exc))

    at, started = utcnow(), time.perf_counter()
    thread = threading.Thread(target=target, name=f"check-{item.id}", daemon=True)
    thread.start()
    limit = timeout_for(item, ctx)
    thread.join(limit)
    ms = (time.perf_counter() - started) * 1000
    outcome: Outcome = box.get("outcome") or failed("time limit", limit, f"did not finish within {limit:g} s")
    # Evidence is stored, shown to every role, exported and copied into the audit trail: no secret may be in it,
    # whatever a check put in its detail (a URL it called, a command's output).
    evidence = {**mask_secrets_in(outcome.evidence()), "at": at.isoformat(timespec="seconds"),
                "duration_ms": round(ms, 1)}
    return ItemResult(item.id, "check", outcome.status, evidence, round(ms, 1))


def ordered(items: Iterable[Item]) -> list[Item]:
    """ITEMS in catalogue order, those that spend a shared budget last."""
    items = list(items)
    return [i for i in items if i.check not in RUN_LAST] + [i for i in items if i.check in RUN_LAST]


def blocked_by(item: Item, statuses: dict[str, str]) -> list[str]:
    """The dependencies of ITEM that are not yet satisfied, as 'id (status)'."""
    return [f"{d} ({statuses.get(d, 'pending')})" for d in item.depends if statuses.get(d) not in SATISFIED]


def run_items(items: Iterable[Item], ctx: CheckContext, *, statuses: dict[str, str],
              on_result: Callable[[ItemResult], None] = lambda _r: None) -> list[ItemResult]:
    """Run the automated ITEMS in order; an item whose dependencies are not satisfied is recorded as blocked.

    STATUSES holds each item's current status and is updated as results arrive, so a dependency checked earlier
    in the same run counts. ON_RESULT is called after each item (the service records it; the page shows progress)."""
    results = []
    for item in ordered(i for i in items if i.automated):
        waiting = blocked_by(item, statuses)
        if waiting:
            result = ItemResult(item.id, "blocked", "blocked", {
                "measured": "dependencies", "value": waiting, "detail": f"waiting on {', '.join(waiting)}",
                "at": utcnow().isoformat(timespec="seconds"), "duration_ms": 0.0}, 0.0)
        else:
            result = run_check(item, ctx)
        statuses[item.id] = result.status
        on_result(result)
        results.append(result)
    return results
