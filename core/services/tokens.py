"""API tokens: printed once, stored as a hash, listed, revoked; expired or revoked ones are refused."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from core import audit
from core.auth import Actor, Permission, secret_digest
from core.db import read_session
from core.errors import NotFound, UserInputError
from core.inputs import short_text
from core.models import ApiToken, User, utcnow
from core.queries.users import actor_for_user, get_user_by_name
from core.services.guard import authorize_read, require
from core.uow import UnitOfWork

TOKEN_PREFIX = "bbat_"
MAX_LIFETIME_DAYS = 3650
LAST_USED_EVERY = timedelta(minutes=1)  # "last used" is telemetry: at most one write a minute per token
token_hash = secret_digest  # the stored form of a token


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str
    username: str
    expires_at: str | None


def create_token(*, actor: Actor, username: str, uow: UnitOfWork, name: str = "",
                 expires_days: float | None = 90) -> NewToken:
    """Issue a token for USERNAME; the plain token is returned once and never stored."""
    expires_days = _lifetime_days(expires_days)
    name = short_text(name, "A token's name", most=100)
    with uow:
        require(uow, actor, Permission.MANAGE_USERS, action="token.create", target=username)
        user = get_user_by_name(uow.session, username)
        if user is None or user.disabled:
            raise NotFound(f"No active user named {username!r}.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(days=expires_days) if expires_days else None
        row = ApiToken(user_id=user.id, name=name, token_hash=token_hash(token), prefix=token[:12], expires_at=expires)
        uow.session.add(row)
        uow.session.flush()
        audit.append(uow.session, actor=actor, action="token.create", target=username,
                     after={"token_id": row.id, "prefix": row.prefix, "expires_at": expires})
        uow.commit()
        return NewToken(row.id, token, user.username, expires.isoformat() if expires else None)


def _lifetime_days(days: float | None) -> int | None:
    """DAYS as whole days from 1 to MAX_LIFETIME_DAYS (None: never expires). 1.5 is refused, not cut to 1 behind the
    person's back; the sentence suits the console, the CLI and a test alike (it named the CLI's flag on the page)."""
    if days is None:
        return None
    if isinstance(days, bool) or not (1 <= days <= MAX_LIFETIME_DAYS and float(days).is_integer()):
        got = int(days) if float(days).is_integer() else f"{days:g}"
        raise UserInputError(f"A token's lifetime must be a whole number of days from 1 to {MAX_LIFETIME_DAYS} "
                             f"(got {got}).")
    return int(days)


def revoke_token(*, actor: Actor, token_id: int, uow: UnitOfWork) -> bool:
    """Revoke a token by id; requests with it get 401 from now on. False when it was revoked already."""
    with uow:
        require(uow, actor, Permission.MANAGE_USERS, action="token.revoke", target=f"token {token_id}")
        row = uow.session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"No token with id {token_id}.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.append(uow.session, actor=actor, action="token.revoke", target=f"token {token_id}",
                         after={"prefix": row.prefix})
            uow.commit()
            return True
        return False


def list_tokens(*, actor: Actor, uow: UnitOfWork) -> list[dict]:
    """Every token with its owner and state (never the token itself); read without the write lock."""
    authorize_read(uow, actor, Permission.MANAGE_USERS, action="token.list")
    now = utcnow()
    with read_session(uow.engine) as s:
        rows = s.execute(select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
                         .order_by(ApiToken.id)).all()
    return [{"id": t.id, "user": u, "prefix": t.prefix + "…", "name": t.name, "created_at": t.created_at,
             "expires_at": t.expires_at, "last_used_at": t.last_used_at,
             "state": "revoked" if t.revoked_at else ("expired" if t.expires_at and t.expires_at <= now else "active")}
            for t, u in rows]


def _usable(session: Session, token: str) -> tuple[ApiToken, Actor] | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).one_or_none()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= utcnow()):
        return None
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return row, actor_for_user(session, user, source="api")


def authenticate_token(session: Session, token: str) -> Actor | None:
    """The actor behind a bearer token, or None when unknown, revoked, expired or its user is disabled."""
    found = _usable(session, token)
    return found[1] if found else None


def use_token(*, engine: Engine, token: str) -> Actor | None:
    """authenticate_token for a request, recording the token's last use (at most once a minute per token)."""
    with read_session(engine) as s:
        found = _usable(s, token)
    if found is None:
        return None
    row, actor = found
    cutoff = utcnow() - LAST_USED_EVERY
    if row.last_used_at is None or row.last_used_at < cutoff:
        with UnitOfWork(engine) as uow:
            uow.session.execute(update(ApiToken).where(
                ApiToken.id == row.id, or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < cutoff))
                .values(last_used_at=utcnow()))
            uow.commit()
    return actor
