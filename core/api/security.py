"""Bearer tokens → the acting user; refused authentications are audited, collapsed per address and minute."""
from __future__ import annotations

from typing import NoReturn

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.api.ratelimit import client_address
from core.auth import Actor, secret_digest
from core.services.tokens import use_token

bearer = HTTPBearer(auto_error=False, description="An API token from `python -m core tokens create`.")


def require_actor(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Actor:
    """The token's user, or 401 (audited). Synchronous: FastAPI runs it in its thread pool, off the event loop."""
    state = request.app.state
    if creds is None:
        _refuse(request, "no bearer token")
    digest = secret_digest(creds.credentials)
    actor = state.token_cache.get(digest, lambda: use_token(engine=state.engine, token=creds.credentials))
    if actor is None:
        # Named by its stored digest, which finds a revoked or expired token's row: the first characters of the
        # token itself put part of a secret into the append-only trail.
        _refuse(request, f"unknown, expired or revoked token (sha256 {digest[:12]}…)")
    state.proven_tokens.put(digest, True)  # from now on this token has a rate-limit budget of its own
    return actor


def caller_address(request: Request) -> str:
    """The client's address as the rate limiter sees it (trusted proxies resolved)."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), request.app.state.settings.trusted_proxies)


def _refuse(request: Request, reason: str) -> NoReturn:
    request.app.state.refusals.refuse(request.app.state.engine, address=caller_address(request),
                                      target=f"{request.method} {request.url.path}"[:200], reason=reason)
    raise HTTPException(status_code=401, detail="A valid API token is required (Authorization: Bearer …).",
                        headers={"WWW-Authenticate": "Bearer"})
