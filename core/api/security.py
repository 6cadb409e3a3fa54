"""Bearer tokens → the acting user; refusals are audited as unauthorized attempts."""
from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.auth import Actor, anonymous_actor
from core.db import read_session
from core.services.guard import record_refusal
from core.services.tokens import authenticate_token, token_hash
from core.uow import UnitOfWork

bearer = HTTPBearer(auto_error=False, description="An API token from `python -m core tokens create`.")


async def require_actor(request: Request) -> Actor:
    """The token's user, or 401 (audited)."""
    creds: HTTPAuthorizationCredentials | None = await bearer(request)
    engine = request.app.state.engine
    if creds is None:
        _refuse(engine, "(no token)", request, "no bearer token")
    actor = request.app.state.token_cache.get(token_hash(creds.credentials), lambda: _lookup(engine, creds.credentials))
    if actor is None:
        _refuse(engine, creds.credentials[:12] + "…", request, "unknown, expired or revoked token")
    return actor


def _lookup(engine, token: str) -> Actor | None:  # noqa: ANN001
    with read_session(engine) as s:
        return authenticate_token(s, token)


def _refuse(engine, who: str, request: Request, reason: str) -> None:  # noqa: ANN001
    record_refusal(actor=anonymous_actor(who, "api"), action="api.authenticate",
                   target=f"{request.method} {request.url.path}", reason=reason, uow=UnitOfWork(engine))
    raise HTTPException(status_code=401, detail="A valid API token is required (Authorization: Bearer …).",
                        headers={"WWW-Authenticate": "Bearer"})
