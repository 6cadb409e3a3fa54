"""Console sign-in: throttled, equally slow for unknown names, audited, backed by a server-side session."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from core import audit
from core.auth import CONSOLE_ROLES, Actor, Role, anonymous_actor, check_password
from core.config import get_settings
from core.errors import PermissionDenied
from core.models import ConsoleSession, LoginAttempt, User, utcnow
from core.queries.users import actor_for_user
from core.uow import UnitOfWork

GENERIC_REFUSAL = "Those credentials did not work."


@dataclass(frozen=True)
class SignedIn:
    actor: Actor
    token: str  # handed to the browser once; only its hash is stored
    name: str
    expires_at: datetime


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _refusal(uow: UnitOfWork, username: str, reason: str) -> None:
    uow.session.add(LoginAttempt(username=username, succeeded=False))
    audit.append(uow.session, actor=anonymous_actor(username, "console"),
                 action="sign_in", target=username, outcome="refused", reason=reason)
    uow.commit()


def sign_in(*, username: str, password: str, uow: UnitOfWork) -> SignedIn:
    """Check the credentials and open a session; raises PermissionDenied with one neutral sentence."""
    s = get_settings()
    username = username.strip().lower()
    with uow:
        since = utcnow() - timedelta(minutes=s.login_window_minutes)
        failures = uow.session.scalar(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username, LoginAttempt.succeeded.is_(False), LoginAttempt.attempted_at >= since))
        user = uow.session.scalars(select(User).where(User.username == username)).one_or_none()
        # bcrypt runs whatever happens next, so a refusal takes as long for unknown names as for known ones.
        password_ok = check_password(password, user.password_hash if user else None)
        if failures >= s.login_max_failures:
            _refusal(uow, username, f"throttled: {failures} failed sign-ins in {s.login_window_minutes} minutes")
            raise PermissionDenied(f"Too many failed sign-ins; try again in {s.login_window_minutes} minutes.")
        problem = _why_refused(user, password_ok, s.environment)
        if problem:
            _refusal(uow, username, problem)
            raise PermissionDenied(GENERIC_REFUSAL)
        token, expires = secrets.token_urlsafe(32), utcnow() + timedelta(hours=s.session_hours)
        uow.session.add(ConsoleSession(id=_token_id(token), user_id=user.id, role_at_start=user.role,
                                       expires_at=expires))
        uow.session.add(LoginAttempt(username=username, succeeded=True))
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
    """The session behind TOKEN if it is still good: not ended, not expired, user enabled, role unchanged."""
    now = utcnow()
    with uow:
        row = uow.session.get(ConsoleSession, _token_id(token))
        if row is None or row.ended_at is not None or row.expires_at <= now:
            return None
        user = uow.session.get(User, row.user_id)
        stale = user.disabled or user.role != row.role_at_start or user.credentials_changed_at > row.created_at
        if stale or (user.is_demo and get_settings().environment != "development"):
            row.ended_at, row.end_reason = now, "credentials or role changed"
            uow.commit()
            return None
        if (now - row.last_seen_at).total_seconds() > 60:  # keep "last seen" fresh without a write per rerun
            row.last_seen_at = now
            uow.commit()
        return SignedIn(actor=actor_for_user(uow.session, user, source="console"), token=token, name=user.name,
                        expires_at=row.expires_at)


def sign_out(*, token: str, uow: UnitOfWork) -> None:
    """End the session behind TOKEN (its cookie is worthless from now on)."""
    with uow:
        row = uow.session.get(ConsoleSession, _token_id(token))
        if row is None or row.ended_at is not None:
            return
        user = uow.session.get(User, row.user_id)
        uow.session.execute(update(ConsoleSession).where(ConsoleSession.id == row.id)
                            .values(ended_at=utcnow(), end_reason="signed out"))
        audit.append(uow.session, actor=actor_for_user(uow.session, user, source="console"), action="sign_out", target=user.username)
        uow.commit()


__all__ = ["GENERIC_REFUSAL", "SignedIn", "resume_session", "sign_in", "sign_out"]
