"""The acting user as stored: role and the shops in their scope."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.auth import Actor, Role
from core.models import Shop, User, UserShop


def actor_for_user(session: Session, user: User, *, source: str) -> Actor:
    """An Actor for USER: support and shop owners see their shops, enterprise owners their enterprise's."""
    role = Role(user.role)
    shops: frozenset[int] | None = None
    if role in (Role.SUPPORT, Role.SHOP_OWNER):
        shops = frozenset(session.scalars(select(UserShop.shop_id).where(UserShop.user_id == user.id)))
    elif role == Role.ENTERPRISE_OWNER:
        shops = frozenset(session.scalars(select(Shop.id).where(Shop.enterprise_id == user.enterprise_id)))
    return Actor(username=user.username, role=role, shop_ids=shops, user_id=user.id, source=source,
                 masks_pii=role == Role.PRODUCT_OWNER)


def get_user_by_name(session: Session, username: str) -> User | None:
    """The user called USERNAME (case-insensitive), or None."""
    return session.scalars(select(User).where(User.username == username.strip().lower())).one_or_none()


def list_users(session: Session, *, actor: Actor) -> list[dict]:
    """Every console and API user with role, shops and state (admins only)."""
    from core.auth import Permission
    from core.queries.scope import require_read

    require_read(actor, Permission.MANAGE_USERS)
    shops: dict[int, list[int]] = {}
    for uid, sid in session.execute(select(UserShop.user_id, UserShop.shop_id).order_by(UserShop.shop_id)):
        shops.setdefault(uid, []).append(sid)
    return [{"user": u.username, "name": u.name, "role": u.role, "shops": shops.get(u.id, []),
             "disabled": u.disabled, "demo": u.is_demo, "created_at": u.created_at}
            for u in session.scalars(select(User).order_by(User.username))]
