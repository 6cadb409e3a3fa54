"""Console users: add, change password, change role, disable. Each ends the user's open sessions."""
from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import delete, select, update

from core import audit
from core.auth import CONSOLE_ROLES, Actor, Permission, Role, hash_password
from core.errors import Conflict, NotFound, UserInputError
from core.inputs import known_shops, shop_ids, short_text
from core.models import ApiToken, ConsoleSession, Enterprise, User, UserShop, utcnow
from core.services.guard import require
from core.uow import UnitOfWork

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
API_ROLES = (Role.SHOP_OWNER, Role.ENTERPRISE_OWNER)
SCOPED_ROLES = (Role.SUPPORT, Role.SHOP_OWNER)  # they see their shops only, so they need some


def _check_password(password: str) -> None:
    if len(password) < 10:
        raise UserInputError("The password must have at least 10 characters.")
    if len(password.encode()) > 72:  # bcrypt reads no further; it refuses longer input rather than ignore it
        raise UserInputError("The password can have at most 72 bytes (bcrypt reads no further).")


def parse_role(role: str) -> Role:
    """ROLE as a Role a console or API user may have; one sentence naming the roles when it is not one."""
    try:
        parsed = Role(role)
    except ValueError:
        parsed = None
    if parsed not in (*CONSOLE_ROLES, *API_ROLES):
        names = ", ".join(r.value for r in (*CONSOLE_ROLES, *API_ROLES))
        raise UserInputError(f"Unknown role {role!r}; roles are {names}.")
    return parsed


def end_sessions(uow: UnitOfWork, user_id: int, reason: str) -> int:
    """End every open console session of USER_ID (inside the caller's transaction)."""
    result = uow.session.execute(
        update(ConsoleSession).where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason))
    return result.rowcount or 0


def _get_user(uow: UnitOfWork, username: str) -> User:
    user = uow.session.scalars(select(User).where(User.username == username).with_for_update()).one_or_none()
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


def add_user(*, actor: Actor, username: str, password: str, role: str, uow: UnitOfWork, name: str = "",
             shops: Sequence[int] = (), enterprise_id: int | None = None, is_demo: bool = False) -> User:
    """Create a console (or API) user with a bcrypt-hashed password and, for scoped roles, their shops."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise UserInputError("A user name is 2-64 characters: lower-case letters, digits, '.', '_' or '-'.")
    parsed = parse_role(role)
    _check_password(password)
    shops = _scoped_shops(parsed, shops)
    with uow:
        require(uow, actor, Permission.MANAGE_USERS, action="user.add", target=username)
        if uow.session.scalars(select(User.id).where(User.username == username)).first() is not None:
            raise Conflict(f"A user named {username!r} already exists.")
        known_shops(uow.session, shops)
        _check_enterprise(uow, parsed, enterprise_id)
        user = User(username=username, name=short_text(name, "The display name", most=200) or username, role=parsed.value, password_hash=hash_password(password),
                    enterprise_id=enterprise_id, is_demo=is_demo)
        uow.session.add(user)
        uow.session.flush()
        uow.session.add_all([UserShop(user_id=user.id, shop_id=s) for s in sorted(set(shops))])
        audit.append(uow.session, actor=actor, action="user.add", target=username,
                     after={"role": parsed.value, "shops": sorted(set(shops)), "demo": is_demo})
        uow.commit()
        return user


def _scoped_shops(role: Role, shops: Sequence[int] | None) -> list[int]:
    """SHOPS checked as shop ids; a support user or shop owner must have some, and no other role may have any
    (they would be stored and listed, yet the role sees every shop, or its enterprise's)."""
    if role in SCOPED_ROLES and not shops:
        raise UserInputError(f"A {role.value} user needs the shops they work for, such as 1,2.")
    if role not in SCOPED_ROLES and shops:
        article = "An" if role.value[0] in "aeiou" else "A"
        sees = "the shops of their enterprise" if role == Role.ENTERPRISE_OWNER else "every shop"
        raise UserInputError(f"{article} {role.value} sees {sees}; shops are for support users and shop owners "
                             f"(got {', '.join(map(str, shops))}).")
    return shop_ids(shops or ())


def _check_enterprise(uow: UnitOfWork, role: Role, enterprise_id: int | None) -> None:
    """An enterprise owner needs an enterprise that exists; no other role has one (a stored id would mislead)."""
    if role == Role.ENTERPRISE_OWNER and enterprise_id is None:
        raise UserInputError("An enterprise_owner needs their enterprise, such as --enterprise 1.")
    if role != Role.ENTERPRISE_OWNER and enterprise_id is not None:
        raise UserInputError(f"Only an enterprise owner belongs to an enterprise (got --enterprise {enterprise_id} "
                             f"for a {role.value}).")
    if enterprise_id is not None and uow.session.get(Enterprise, enterprise_id) is None:
        raise UserInputError(f"No enterprise with id {enterprise_id}.")  # like an unknown shop (known_shops)


def _keep_an_admin(uow: UnitOfWork, user: User) -> None:
    """Refuse to demote or disable USER when no other enabled admin would be left to manage the console."""
    if user.role != Role.ADMIN.value or user.disabled:
        return
    others = uow.session.scalars(select(User.id).where(User.role == Role.ADMIN.value, User.disabled.is_(False),
                                                       User.id != user.id).limit(1).with_for_update()).first()
    if others is None:
        raise Conflict(f"{user.username} is the last enabled admin: make another user admin first, or nobody could "
                       "manage users any more.")


def _not_yourself(actor: Actor, user: User, what: str) -> None:
    """One click on the first name in a list signed an admin out for good: another admin does this for them."""
    if user.username == actor.username:
        raise UserInputError(f"You cannot {what} yourself; another admin can.")


def set_password(*, actor: Actor, username: str, password: str, uow: UnitOfWork) -> None:
    """Replace a user's password; their open sessions end at once."""
    _check_password(password)
    with uow:
        require(uow, actor, Permission.MANAGE_USERS, action="user.set_password", target=username)
        user = _get_user(uow, username)
        user.password_hash, user.credentials_changed_at = hash_password(password), utcnow()
        ended = end_sessions(uow, user.id, "password changed")
        audit.append(uow.session, actor=actor, action="user.set_password", target=username,
                     after={"sessions_ended": ended})
        uow.commit()


def set_disabled(*, actor: Actor, username: str, disabled: bool, uow: UnitOfWork) -> bool:
    """Disable (or re-enable) a user; disabling ends their sessions and revokes their API tokens at once (enabling
    them again brings no token back: an admin issues new ones). False: they already were."""
    action = "user.disable" if disabled else "user.enable"
    with uow:
        require(uow, actor, Permission.MANAGE_USERS, action=action, target=username)
        user = _get_user(uow, username)
        if user.disabled == disabled:
            return False
        if disabled:
            _not_yourself(actor, user, "disable")
            _keep_an_admin(uow, user)
        user.disabled, user.credentials_changed_at = disabled, utcnow()
        ended = end_sessions(uow, user.id, "user disabled") if disabled else 0
        revoked = _revoke_tokens(uow, user.id) if disabled else 0
        audit.append(uow.session, actor=actor, action=action, target=username,
                     after={"sessions_ended": ended, "tokens_revoked": revoked})
        uow.commit()
        return True


def _revoke_tokens(uow: UnitOfWork, user_id: int) -> int:
    """Revoke the user's live API tokens; returns how many. Only refused while disabled, they came back on enable."""
    return uow.session.execute(update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                               .values(revoked_at=utcnow())).rowcount


def _refuse_no_change(uow: UnitOfWork, user: User, role: Role, shops: Sequence[int] | None) -> None:
    """Choosing the role and shops a user already has is one sentence: it would end their sessions and audit a
    change that did not happen. SHOPS None keeps the ones on file (a role that sees every shop keeps none)."""
    held = sorted(uow.session.scalars(select(UserShop.shop_id).where(UserShop.user_id == user.id)))
    wanted = held if shops is None and role in SCOPED_ROLES else sorted(set(shops or ()))
    if role.value == user.role and wanted == held:
        on_file = f" (shops {', '.join(map(str, held))})" if held else ""
        raise UserInputError(f"{user.username} is already {role.value}{on_file}; nothing changed.")


def set_role(*, actor: Actor, username: str, role: str, uow: UnitOfWork, shops: Sequence[int] | None = None,
             expected_role: str | None = None) -> None:
    """Change a user's role (and shops); their sessions end so the new role applies at once. EXPECTED_ROLE (the
    role the form showed) refuses a change made over someone else's."""
    parsed = parse_role(role)
    if shops is not None:
        shops = _scoped_shops(parsed, shops)
    with uow:
        require(uow, actor, Permission.MANAGE_USERS, action="user.set_role", target=username)
        user = _get_user(uow, username)
        if expected_role is not None and user.role != expected_role:
            raise Conflict(f"{user.username} became {user.role} (was {expected_role}) since you opened the form; "
                           "nothing was saved. Look again and choose their new role.")
        _refuse_no_change(uow, user, parsed, shops)
        if parsed.value != user.role:
            _not_yourself(actor, user, "change the role of")
        if parsed != Role.ADMIN:
            _keep_an_admin(uow, user)
        if shops is not None:
            known_shops(uow.session, shops)
        elif parsed in SCOPED_ROLES:  # keeps the shops the user has, if any
            _scoped_shops(parsed, list(uow.session.scalars(select(UserShop.shop_id).where(
                UserShop.user_id == user.id))))
        before = {"role": user.role}
        user.role, user.credentials_changed_at = parsed.value, utcnow()
        if shops is not None or parsed not in SCOPED_ROLES:  # a role that sees every shop keeps none on file
            uow.session.execute(delete(UserShop).where(UserShop.user_id == user.id))
            uow.session.add_all([UserShop(user_id=user.id, shop_id=s) for s in sorted(set(shops or ()))])
        ended = end_sessions(uow, user.id, "role changed")
        audit.append(uow.session, actor=actor, action="user.set_role", target=username, before=before,
                     after={"role": parsed.value, "sessions_ended": ended})
        uow.commit()
