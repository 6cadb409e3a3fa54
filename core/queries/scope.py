"""The acting user's shop scope as SQL conditions: one place, so no read forgets it."""
from __future__ import annotations

from typing import Any

from core.auth import Actor, Permission
from core.errors import PermissionDenied


def shop_filter(actor: Actor, column: Any) -> list[Any]:
    """Conditions limiting COLUMN (a shop_id) to what ACTOR may see (none for unscoped roles)."""
    if actor.shop_ids is None:
        return []
    return [column.in_(sorted(actor.shop_ids))]


def require_read(actor: Actor, permission: Permission) -> None:
    """Reads refuse early (and are audited by the surface that asked) when the role lacks PERMISSION."""
    if not actor.can(permission):
        raise PermissionDenied(f"{actor.username} ({actor.role.value}) may not {permission.value.replace('_', ' ')}.")
