"""Console sign-in: throttled, equally slow for unknown names, audited, backed by a server-side session."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update

from core import audit
from core.auth import CONSOLE_ROLES, Actor, Role, anonymous_actor, check_password, secret_digest
from core.config import Settings, get_settings
from core.db import read_session
from core.errors import PermissionDenied
from core.models import ConsoleSession, LoginAttempt, User, utcnow
from core.queries.users import actor_for_user
from core.uow import UnitOfWork

GENERIC_REFUSAL = "Those credentials did not work."
NAME_COLUMN = LoginAttempt.__table__.c.username.type.length  # names beyond it are cut, counted and refused


@dataclass(frozen=True)
class SignedIn:
    actor: Actor
    token: str  # handed to the browser once; only its hash is stored
    name: str
    expires_at: datetime


def _lock_name(uow: UnitOfWork, username: str) -> None:
    """Serialise attempts on one name until this transaction ends (SQLite: BEGIN IMMEDIATE already does)."""
    if uow.session.get_bind().dialect.name == "postgresql":
        uow.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"sign_in:{username}"})


def _reserve_attempt(uow: UnitOfWork, username: str, s: Settings) -> int:
    """Count the name's failures and record this attempt as one, atomically, before any password is checked.

    Parallel attempts queue on the name's lock, so at most LOGIN_MAX_FAILURES of them ever reach bcrypt."""
    with uow:
        _lock_name(uow, username)
        since = utcnow() - timedelta(minutes=s.login_window_minutes)
        failures = uow.session.scalar(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username, LoginAttempt.succeeded.is_(False), LoginAttempt.attempted_at >= since))
        attempt = LoginAttempt(username=username, succeeded=False)
        uow.session.add(attempt)
        if failures >= s.login_max_failures:
            audit.append(uow.session, actor=anonymous_actor(username, "console"), action="sign_in", target=username,
                         outcome="refused",
                         reason=f"throttled: {failures} failed sign-ins in {s.login_window_minutes} minutes")
            uow.commit()
            raise PermissionDenied(f"Too many failed sign-ins; try again in {s.login_window_minutes} minutes.")
        uow.session.flush()
        uow.commit()
        return attempt.id


def sign_in(*, username: str, password: str, uow: UnitOfWork) -> SignedIn:
    """Check the credentials and open a session; raises PermissionDenied with one neutral sentence."""
    s = get_settings()
    username = username.strip().lower()[:NAME_COLUMN]
    attempt_id = _reserve_attempt(uow, username, s)
    with read_session(uow.engine) as rs:
        user = rs.scalars(select(User).where(User.username == username)).one_or_none()
    # bcrypt runs outside any transaction, and for unknown names too, so a refusal takes as long either way.
    password_ok = check_password(password, user.password_hash if user else None)
    problem = _why_refused(user, password_ok, s.environment)
    with uow:
        if problem:
            audit.append(uow.session, actor=anonymous_actor(username, "console"), action="sign_in", target=username,
                         outcome="refused", reason=problem)
            uow.commit()
            raise PermissionDenied(GENERIC_REFUSAL)
        token, expires = secrets.token_urlsafe(32), utcnow() + timedelta(hours=s.session_hours)
        uow.session.add(ConsoleSession(id=secret_digest(token), user_id=user.id, role_at_start=user.role,
                                       expires_at=expires))
        uow.session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(succeeded=True))
        actor = actor_for_user(uow.session, user, source="console")
        audit.append(uow.session, actor=actor, action="sign_in", target=username)
        uow.commit()
        return SignedIn(actor=actor, token=token, name=user.name, expires_at=expires)


def _why_refused(user: User | None, password_ok: bool, environment: str) -> str:
    if user is None:
        return "unknown user name"
    if not password_ok:
        return "wrong password"
    if user.disabled:
        return "user disabled"
    if user.is_demo and environment != "development":
        return f"demo user refused in {environment}"
    if Role(user.role) not in CONSOLE_ROLES:
        return f"role {user.role} has no console access"
    return ""


def resume_session(*, token: str, uow: UnitOfWork) -> SignedIn | None:
    """The session behind TOKEN if it is still good: not ended, not expired, user enabled, role unchanged.

    A read (no write lock on every rerun); it writes only to end a stale session or, once a minute, "last seen"."""
    now = utcnow()
    with read_session(uow.engine) as s:
        row = s.get(ConsoleSession, secret_digest(token))
        if row is None or row.ended_at is not None or row.expires_at <= now:
            return None
        user = s.get(User, row.user_id)
        stale = user.disabled or user.role != row.role_at_start or user.credentials_changed_at > row.created_at
        if stale or (user.is_demo and get_settings().environment != "development"):
            _touch_session(uow, row.id, ended_at=now, end_reason="credentials or role changed")
            return None
        if (now - row.last_seen_at).total_seconds() > 60:  # keep "last seen" fresh without a write per rerun
            _touch_session(uow, row.id, last_seen_at=now)
        return SignedIn(actor=actor_for_user(s, user, source="console"), token=token, name=user.name,
                        expires_at=row.expires_at)


def _touch_session(uow: UnitOfWork, session_id: str, **values: object) -> None:
    with uow:
        uow.session.execute(update(ConsoleSession).where(ConsoleSession.id == session_id).values(**values))
        uow.commit()


def sign_out(*, token: str, uow: UnitOfWork) -> None:
    """End the session behind TOKEN (its cookie is worthless from now on)."""
    with uow:
        row = uow.session.get(ConsoleSession, secret_digest(token))
        if row is None or row.ended_at is not None:
            return
        user = uow.session.get(User, row.user_id)
        uow.session.execute(update(ConsoleSession).where(ConsoleSession.id == row.id)
                            .values(ended_at=utcnow(), end_reason="signed out"))
        audit.append(uow.session, actor=actor_for_user(uow.session, user, source="console"), action="sign_out", target=user.username)
        uow.commit()


__all__ = ["GENERIC_REFUSAL", "SignedIn", "resume_session", "sign_in", "sign_out"]
