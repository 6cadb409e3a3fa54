"""Roles, permissions and the acting user. The role table of the design lives here, once."""
from __future__ import annotations

import getpass
import hashlib
from dataclasses import dataclass, field
from enum import Enum

import bcrypt


class Role(str, Enum):
    PRODUCT_OWNER = "product_owner"
    SUPPORT = "support"
    ENGINEER = "engineer"
    ADMIN = "admin"
    SHOP_OWNER = "shop_owner"
    ENTERPRISE_OWNER = "enterprise_owner"
    SYSTEM = "system"  # the CLI on a machine that holds the database credentials
    ANONYMOUS = "anonymous"  # not signed in (failed sign-ins, requests without a token)


class Permission(str, Enum):
    VIEW_HEALTH = "view_health"
    READ_CONVERSATIONS = "read_conversations"
    REVIEW_CONVERSATIONS = "review_conversations"
    CONTROL_SYSTEM = "control_system"  # kill switch, mode, per-type disable
    MANAGE_INSTANCES = "manage_instances"  # activate / pause an instance
    ROLLBACK = "rollback"
    CHECKLIST = "checklist"  # checklist ticks, alert rules
    READ_AUDIT = "read_audit"
    MANAGE_USERS = "manage_users"  # users, API tokens


P, R = Permission, Role
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    R.PRODUCT_OWNER: frozenset({P.VIEW_HEALTH, P.READ_CONVERSATIONS, P.READ_AUDIT}),
    R.SUPPORT: frozenset({P.VIEW_HEALTH, P.READ_CONVERSATIONS, P.REVIEW_CONVERSATIONS}),
    R.ENGINEER: frozenset(set(P) - {P.MANAGE_USERS}),
    R.ADMIN: frozenset(P),
    R.SHOP_OWNER: frozenset({P.VIEW_HEALTH, P.READ_CONVERSATIONS, P.MANAGE_INSTANCES}),
    R.ENTERPRISE_OWNER: frozenset({P.VIEW_HEALTH, P.READ_CONVERSATIONS, P.MANAGE_INSTANCES}),
    R.SYSTEM: frozenset(P),
    R.ANONYMOUS: frozenset(),
}
CONSOLE_ROLES = (R.PRODUCT_OWNER, R.SUPPORT, R.ENGINEER, R.ADMIN)


@dataclass(frozen=True)
class Actor:
    """Who is acting, with which role, over which shops (None: all), and through which surface."""

    username: str
    role: Role
    shop_ids: frozenset[int] | None = None
    user_id: int | None = None
    source: str = "cli"
    masks_pii: bool = field(default=False)

    def can(self, permission: Permission) -> bool:
        """True when the role grants PERMISSION."""
        return permission in ROLE_PERMISSIONS[self.role]

    def sees_shop(self, shop_id: int) -> bool:
        """True when SHOP_ID is within this actor's scope."""
        return self.shop_ids is None or shop_id in self.shop_ids

    @property
    def scope_key(self) -> str:
        """A stable string of role and shops, for cache keys."""
        shops = "all" if self.shop_ids is None else ",".join(map(str, sorted(self.shop_ids)))
        return f"{self.role.value}:{shops}"


def anonymous_actor(name: str, source: str) -> Actor:
    """Someone not (yet) signed in, named by what they claimed to be."""
    return Actor(username=name or "(blank)", role=Role.ANONYMOUS, source=source)


def system_actor(source: str = "cli", name: str | None = None) -> Actor:
    """The operator at a shell with database access."""
    return Actor(username=name or f"cli:{getpass.getuser()}", role=Role.SYSTEM, source=source)


def secret_digest(secret: str) -> str:
    """The stored form of a bearer secret (API token, console session token): sha256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    """A bcrypt hash of PASSWORD."""
    from core.config import get_settings

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=get_settings().bcrypt_rounds)).decode()


_dummy_hashes: dict[int, str] = {}


def _dummy_hash() -> str:
    """A real hash at the configured cost, so an unknown user name costs the same time as a known one."""
    from core.config import get_settings

    rounds = get_settings().bcrypt_rounds
    if rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=rounds)).decode()
    return _dummy_hashes[rounds]


def check_password(password: str, hashed: str | None) -> bool:
    """True when PASSWORD matches HASHED; spends the same time when HASHED is None."""
    try:
        ok = bcrypt.checkpw(password.encode(), (hashed or _dummy_hash()).encode())
    except ValueError:
        ok = False
    return ok and hashed is not None
