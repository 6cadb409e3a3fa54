"""The permission check every service starts with; a refusal is audited before it is raised."""
from __future__ import annotations

from typing import Any, NoReturn

from core import audit
from core.action_words import doing
from core.auth import ROLE_PERMISSIONS, Actor, Permission, Role
from core.errors import AgentOpsError, PermissionDenied
from core.uow import UnitOfWork


def require(uow: UnitOfWork, actor: Actor, permission: Permission, *, action: str, target: str = "",
            shop_id: int | None = None) -> None:
    """Raise PermissionDenied (after committing an audit record of the attempt) unless ACTOR may act."""
    if actor.can(permission) and (shop_id is None or actor.sees_shop(shop_id)):
        return
    reason = f"role {actor.role.value} lacks {permission.value}" + (
        "" if shop_id is None or actor.sees_shop(shop_id) else f" for shop {shop_id}")
    why = f"that takes the {_who_may(permission)}" if not actor.can(permission) else \
        f"shop {shop_id} is not one of theirs"  # they hold the permission: naming it told them nothing
    refuse(uow, actor, action=action, target=target, reason=reason,
           message=f"{actor.username} ({actor.role.value}) may not {doing(action)}"
                   + (f" ({target})" if target else "") + f": {why}.")


def _who_may(permission: Permission) -> str:
    """'checklist permission (engineer, admin)': what a refused person asks for, and of whom."""
    roles = [r.value for r, granted in ROLE_PERMISSIONS.items() if permission in granted and r != Role.SYSTEM]
    return f"{permission.value.replace('_', ' ')} permission ({', '.join(roles)})"


def refuse(uow: UnitOfWork, actor: Actor, *, action: str, target: str, reason: str, message: str,
           error: type[AgentOpsError] = PermissionDenied) -> NoReturn:
    """Drop the unit's changes, commit an audit record of the refused attempt, and raise ERROR(MESSAGE): a
    PermissionDenied, or a NotFound where something outside the actor's shops must look like nothing at all."""
    uow.session.rollback()
    audit.append(uow.session, actor=actor, action=action, target=target, outcome="refused", reason=reason)
    uow.commit()
    raise error(message)


def record_refusal(*, actor: Actor, action: str, target: str, reason: str, uow: UnitOfWork,
                   after: dict[str, Any] | None = None) -> None:
    """Write a refused read (a page, a conversation, client data) to the audit log as an unauthorized attempt."""
    with uow:
        audit.append(uow.session, actor=actor, action=action, target=target, outcome="refused", reason=reason,
                     after=after)
        uow.commit()


def authorize_read(uow: UnitOfWork, actor: Actor, permission: Permission, *, action: str, target: str = "") -> None:
    """For reads served from a read session: nothing happens when ACTOR may read; a refusal is audited and raised.

    Only a refusal opens the write unit of work, so an allowed read never takes SQLite's write lock."""
    if actor.can(permission):
        return
    with uow:
        require(uow, actor, permission, action=action, target=target)
