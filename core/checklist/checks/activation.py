"""Checks of activation: limited scope in force, templates load, and the kill switch's dry run."""
from __future__ import annotations

import time

from core.auth import Permission
from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, warned
from core.db import read_session
from core.queries.controls import get_propagation
from core.queries.settings import get_activation_state
from core.seed.catalog import stored_templates
from core.templates import check_templates
from core.uow import UnitOfWork

TARGET_SECONDS = 300  # the seed's "Immediate Rollback (< 5 minutes)"
POLL_SECONDS = 0.2


def check_limited_activation(ctx: CheckContext) -> Outcome:
    """The agent system runs with limited scope (allow-listed shops or a percentage), not off, not yet full."""
    with read_session(ctx.engine) as s:
        state = get_activation_state(s)
    value = {"mode": state.mode, "shops": list(state.allowed_shops), "percent": state.shop_percent,
             "agent_types": list(state.allowed_agent_types), "running": state.running}
    if state.mode == "limited" and state.running:
        return passed("activation mode", value, f"limited to shops {list(state.allowed_shops)}"
                                                + (f" + {state.shop_percent}%" if state.shop_percent else ""))
    if state.mode == "full" and state.running:
        return warned("activation mode", value, "full: the system is past the limited stage")
    return failed("activation mode", value, "the agent system is not running" +
                  ("" if state.env_enabled else " (AGENT_SYSTEM_ENABLED=false)"))


def check_templates_load(ctx: CheckContext) -> Outcome:
    """Every agent type's template, shipped and stored (what the worker renders), loads and renders with a sample
    context. It checked the shipped file alone, and passed on a database that held no template at all."""
    with read_session(ctx.engine) as s:
        stored = stored_templates(s)
    problems = check_templates() + [f"stored {p}" for p in check_templates(
        specs=stored, missing="no template in the database (`python -m core db setup` installs them)")]
    return verdict(not problems, "templates", len(stored),
                   "; ".join(problems[:5]) or f"all {len(stored)} stored templates render")


def _wait_for_workers(ctx: CheckContext, version: int, changed_at, deadline: float):
    while True:
        with read_session(ctx.engine) as s:
            prop = get_propagation(s, actor=ctx.actor, version=version, changed_at=changed_at)
        if prop.complete or time.monotonic() >= deadline:
            return prop
        time.sleep(POLL_SECONDS)


def check_kill_switch_dry_run(ctx: CheckContext) -> Outcome:
    """Kill switch off → every live worker acknowledges → back on as it was, timed (production: typed confirmation)."""
    if ctx.environment == "production" and ctx.confirm != "production":
        return failed("kill switch dry run", None, "not run: in production the dry run needs the typed "
                                                   "confirmation 'production'")
    if not ctx.actor.can(Permission.CONTROL_SYSTEM):
        return failed("kill switch dry run", None, f"{ctx.actor.username} may not switch the agent system off")
    from core.services.controls import apply_settings_change, switch_off

    started, deadline = time.monotonic(), time.monotonic() + ctx.settings.checklist_item_timeout_seconds - 2
    before: dict = {}

    def off(row) -> None:
        before.update(mode=row.mode, allowed_shops=list(row.allowed_shops or []), shop_percent=row.shop_percent,
                      allowed_agent_types=list(row.allowed_agent_types or []))
        switch_off(row)

    with UnitOfWork(ctx.engine) as uow:
        off_state, changed = apply_settings_change(uow, actor=ctx.actor, action="checklist.kill_switch_dry_run",
                                                   reason="checklist: kill-switch dry run (off)",
                                                   expected_version=None, apply=off)
        uow.commit()
    if not changed:
        return warned("kill switch dry run", {"mode": off_state.mode}, "the system was already off; nothing to switch")
    try:  # whatever happens while waiting, the system goes back to how it was
        prop = _wait_for_workers(ctx, off_state.version, off_state.changed_at, deadline)
        off_seconds = time.monotonic() - started
    finally:
        _restore(ctx, before)
    value = {"acknowledged": len(prop.acknowledged), "waiting": prop.waiting, "seconds_to_off": round(off_seconds, 2),
             "restored_mode": before["mode"]}
    if prop.waiting:
        return failed("kill switch dry run", value, prop.sentence() + "; switched back on")
    if not prop.acknowledged:
        return warned("kill switch dry run", value, "no live worker to acknowledge; switched back on")
    return verdict(off_seconds < TARGET_SECONDS, "kill switch dry run", value,
                   f"{prop.sentence()}; switched back to {before['mode']}")


def _restore(ctx: CheckContext, before: dict) -> None:
    """Put the mode and scope back exactly as they were before the dry run (audited, one commit)."""
    from core.services.controls import apply_settings_change

    def back(row) -> None:  # an AgentSettings row
        for name, value in before.items():
            setattr(row, name, value)

    with UnitOfWork(ctx.engine) as uow:
        apply_settings_change(uow, actor=ctx.actor, action="checklist.kill_switch_dry_run",
                              reason=f"checklist: kill-switch dry run (back to {before['mode']})", expected_version=None,
                              apply=back)
        uow.commit()
