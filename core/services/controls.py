"""The kill switch, activation modes, per-type disable and per-instance pause."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from core import audit
from core.auth import Actor, Permission
from core.errors import Conflict, NotFound, UserInputError
from core.inputs import known_shops, required_reason
from core.models import ACTIVATION_MODES, AGENT_TYPES, AgentInstance, AgentSettings, utcnow
from core.queries.settings import ActivationState, state_of
from core.services.guard import refuse, require
from core.services.rollback_runs import close_before_newer_version
from core.settings_channel import announce_settings_change
from core.uow import UnitOfWork


def _locked_settings(uow: UnitOfWork) -> AgentSettings:
    return uow.session.scalars(select(AgentSettings).where(AgentSettings.id == 1).with_for_update()).one()


def _change_settings(uow: UnitOfWork, *, actor: Actor, action: str, reason: str, expected_version: int | None,
                     apply: Callable[[AgentSettings], None]) -> ActivationState:
    """Lock the row, apply, and audit only when something actually changed (one version bump); commits."""
    state, changed = apply_settings_change(uow, actor=actor, action=action, reason=reason,
                                           expected_version=expected_version, apply=apply)
    if changed:
        uow.commit()
    return state


def apply_settings_change(uow: UnitOfWork, *, actor: Actor, action: str, reason: str, expected_version: int | None,
                          apply: Callable[[AgentSettings], None]) -> tuple[ActivationState, bool]:
    """The change and its audit record inside the caller's transaction (the caller commits)."""
    reason = required_reason(reason, "A reason is required for every change to the agent system.")
    row = _locked_settings(uow)
    if expected_version is not None and row.version != expected_version:
        raise Conflict(f"The settings changed to version {row.version} (by {row.changed_by}) while you were "
                       f"looking at version {expected_version}; review the new state and try again.")
    before = state_of(row)
    apply(row)
    after = state_of(row)
    if _scope(before) == _scope(after):
        return before, False
    close_before_newer_version(uow, actor=actor, new_version=row.version + 1)
    row.version += 1
    row.changed_by, row.changed_at, row.reason = actor.username, utcnow(), reason
    audit.append(uow.session, actor=actor, action=action, target="agent_settings", reason=reason,
                 before=before.as_dict(), after=state_of(row).as_dict())
    announce_settings_change(uow.session, version=row.version)  # pushed to the workers when the caller commits
    return state_of(row), True


def _scope(state: ActivationState) -> tuple:
    return (state.mode, state.allowed_shops, state.allowed_agent_types, state.shop_percent, state.disabled_agent_types)


def _check_types(agent_types: Sequence[str]) -> tuple[str, ...]:
    unknown = sorted(set(agent_types) - set(AGENT_TYPES))
    if unknown:
        raise UserInputError(f"Unknown agent type {', '.join(unknown)}; known types: {', '.join(AGENT_TYPES)}.")
    return tuple(sorted(set(agent_types)))


def engage_kill_switch(*, actor: Actor, reason: str, uow: UnitOfWork,
                       expected_version: int | None = None) -> ActivationState:
    """Stop every worker from starting new conversations (mode off); in-flight ones finish."""
    with uow:
        require(uow, actor, Permission.CONTROL_SYSTEM, action="kill_switch.engage", target="agent_settings")

        return _change_settings(uow, actor=actor, action="kill_switch.engage", reason=reason,
                                expected_version=expected_version, apply=switch_off)


def switch_off(row: AgentSettings) -> None:
    """The kill switch's change: mode off (scope is kept for when it is switched back on)."""
    row.mode = "off"


def set_activation(*, actor: Actor, mode: str, reason: str, uow: UnitOfWork, shops: Sequence[int] = (),
                   agent_types: Sequence[str] = (), shop_percent: float | None = None,
                   expected_version: int | None = None) -> ActivationState:
    """Switch to MODE: off, limited (allow-listed shops and types, or a stable percentage of shops) or full."""
    if mode not in ACTIVATION_MODES:
        raise UserInputError(f"Mode must be one of {', '.join(ACTIVATION_MODES)}, not {mode!r}.")
    if shop_percent is not None:  # 12.7 is refused, not cut to 12 behind the person's back
        if not (0 <= shop_percent <= 100 and float(shop_percent).is_integer()):
            got = int(shop_percent) if float(shop_percent).is_integer() else f"{shop_percent:g}"  # 10**20, not 1e+20
            raise UserInputError(f"The shop percentage must be a whole number from 0 to 100 (got {got}).")
        shop_percent = int(shop_percent)
    if mode == "limited" and not shops and not shop_percent:  # 0 % alone: 'RUNNING' with nothing in scope
        raise UserInputError("Limited mode needs at least one shop or a percentage of shops above 0.")
    with uow:
        require(uow, actor, Permission.CONTROL_SYSTEM, action=f"activation.{mode}", target="agent_settings")
        types, shop_ids = _check_types(agent_types), known_shops(uow.session, shops)

        def apply(row: AgentSettings) -> None:
            row.mode = mode
            limited = mode == "limited"
            row.allowed_shops = list(shop_ids) if limited else []
            row.allowed_agent_types = list(types) if limited else []
            row.shop_percent = shop_percent if limited else None

        return _change_settings(uow, actor=actor, action=f"activation.{mode}", reason=reason,
                                expected_version=expected_version, apply=apply)


def set_agent_type_enabled(*, actor: Actor, agent_type: str, enabled: bool, reason: str, uow: UnitOfWork,
                           expected_version: int | None = None) -> ActivationState:
    """Disable a problematic agent type everywhere, or enable it again."""
    _check_types([agent_type])
    action = "agent_type.enable" if enabled else "agent_type.disable"
    with uow:
        require(uow, actor, Permission.CONTROL_SYSTEM, action=action, target=agent_type)

        def apply(row: AgentSettings) -> None:
            current = set(row.disabled_agent_types or [])
            row.disabled_agent_types = sorted(current - {agent_type} if enabled else current | {agent_type})

        return _change_settings(uow, actor=actor, action=action, reason=reason,
                                expected_version=expected_version, apply=apply)


@dataclass(frozen=True)
class InstanceView:
    id: int
    shop_id: int
    agent_type: str
    status: str


def set_instance_status(*, actor: Actor, instance_id: int, status: str, reason: str, uow: UnitOfWork) -> InstanceView:
    """Activate or pause one agent instance (shop owners for their own shops, engineers for all)."""
    if status not in ("active", "paused"):
        raise UserInputError("An instance can be set to active or paused.")
    action = "instance.activate" if status == "active" else "instance.pause"
    with uow:
        inst = uow.session.get(AgentInstance, instance_id, with_for_update=True)
        require(uow, actor, Permission.MANAGE_INSTANCES, action=action, target=f"instance {instance_id}")
        missing = f"No agent instance with id {instance_id}."
        if inst is None:
            raise NotFound(missing)
        if not actor.sees_shop(inst.shop_id):  # another shop's instance looks exactly like a missing one (audited)
            refuse(uow, actor, action=action, target=f"instance {instance_id}", error=NotFound, message=missing,
                   reason=f"instance of shop {inst.shop_id}, outside {actor.username}'s shops")
        if inst.status != status:
            before = inst.status
            inst.status, inst.updated_at = status, utcnow()
            audit.append(uow.session, actor=actor, action=action, target=f"instance {instance_id}",
                         reason=reason, before={"status": before}, after={"status": status})
            uow.commit()
        return InstanceView(inst.id, inst.shop_id, inst.agent_type, inst.status)
