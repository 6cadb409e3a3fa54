"""The FastAPI app factory: routes, rate limits, body limits, errors as JSON, request metrics."""
from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Histogram
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.api.cache import TTLCache
from core.api.limits import BodyLimitMiddleware
from core.api.prometheus import make_registry
from core.api.ratelimit import MemoryLimiter, RedisLimiter
from core.api.refusals import RefusalCollapser
from core.api.routes import router
from core.api.security import caller_address
from core.auth import secret_digest
from core.config import Settings, get_settings
from core.db import get_engine
from core.errors import AgentOpsError, first_line

log = logging.getLogger("core.api")
LIMITED_PREFIX = "/api/v2/agents/"
READINESS_PATH = "/api/v2/agents/health"  # probes and load balancers: a generous limit of its own
UNLIMITED_PATHS = ("/health",)  # liveness touches nothing
# Label values must come from a fixed set: a raw method or path per request would grow /metrics without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROVEN_TOKEN_SECONDS = 60.0


def create_app(*, engine: Engine | None = None, settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve app; nothing connects until the first request."""
    settings = settings or get_settings()
    docs = settings.docs_served()
    app = FastAPI(title="BookedBarber V2 agent API", version="2.0", lifespan=_lifespan,
                  description="Health, status and activation of the agent system.",
                  openapi_url="/openapi.json" if docs else None, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None)
    app.state.engine = engine or get_engine()
    app.state.settings = settings
    app.state.registry, latency = make_registry(app.state.engine)
    size = settings.api_token_cache_size
    app.state.status_cache = TTLCache(settings.api_status_cache_seconds, max_entries=size)
    # A token's user is looked up at most once a second: revoking a token takes effect within that second.
    app.state.token_cache = TTLCache(settings.api_token_cache_seconds, max_entries=size)
    app.state.proven_tokens = TTLCache(PROVEN_TOKEN_SECONDS, max_entries=size)
    app.state.refusals = RefusalCollapser()
    limit = settings.api_rate_limit_per_minute
    app.state.limiter = RedisLimiter(limit, settings.redis_url) if settings.redis_url else MemoryLimiter(limit)
    app.state.health_limiter = MemoryLimiter(settings.api_health_rate_limit_per_minute)
    app.include_router(router)
    _install_handlers(app)
    _install_limits_and_timing(app, latency)
    app.add_middleware(BodyLimitMiddleware)
    return app


def _install_limits_and_timing(app: FastAPI, latency: Histogram) -> None:
    """Rate limits before a route runs; latency by route template, bounded method and status after it."""

    @app.middleware("http")
    async def limit_and_time(request: Request, call_next):  # noqa: ANN202
        started = time.perf_counter()
        if request.url.path not in UNLIMITED_PATHS and app.state.refusals.due():  # liveness touches nothing
            await run_in_threadpool(app.state.refusals.flush, app.state.engine)
        budget = _budget(request)
        if budget is not None:
            limiter, identity, unproven = budget
            verdict = limiter.hit(identity)
            if not verdict.allowed:
                return _too_many(limiter.limit, verdict.retry_after_s)
        response = await call_next(request)
        if budget is not None:
            if unproven and app.state.proven_tokens.contains(unproven):
                limiter.hit(_token_identity(unproven))  # its first request counts for the token as well
            response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        route = request.scope.get("route")
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        latency.labels(getattr(route, "path", "unmatched"), method, str(response.status_code)).observe(
            time.perf_counter() - started)
        return response


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await run_in_threadpool(app.state.refusals.flush, app.state.engine, everything=True)


def _budget(request: Request) -> tuple[MemoryLimiter | RedisLimiter, str, str | None] | None:
    """Which limiter and identity a request is counted against (None: not limited).

    A bearer token has a budget of its own only once it has been proven valid; until then the request counts
    for the client's address, so a made-up token per request buys nothing."""
    path, state = request.url.path, request.app.state
    if path in UNLIMITED_PATHS:
        return None
    if path == READINESS_PATH:
        return state.health_limiter, "ip:" + caller_address(request), None
    if not (path.startswith(LIMITED_PREFIX) or path == LIMITED_PREFIX.rstrip("/")):
        return None
    auth = request.headers.get("authorization", "")
    digest = secret_digest(auth[7:].strip()) if auth.lower().startswith("bearer ") and len(auth) > 7 else None
    if digest and state.proven_tokens.contains(digest):
        return state.limiter, _token_identity(digest), None
    return state.limiter, "ip:" + caller_address(request), digest


def _token_identity(digest: str) -> str:
    return "token:" + digest[:24]


def _too_many(limit: int, retry_after_s: int) -> Response:
    return JSONResponse({"error": f"Rate limit of {limit} requests per minute reached."}, status_code=429,
                        headers={"Retry-After": str(retry_after_s), "X-RateLimit-Remaining": "0"})


def _where(loc: tuple) -> str:
    """'instance_id', or 'body (character 17)' for JSON that does not parse."""
    rest = [str(p) for p in loc[1:]]
    if len(loc) == 2 and isinstance(loc[1], int):
        return f"{loc[0]} (character {loc[1]})"
    return ".".join(rest) or str(loc[0] if loc else "body")


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(AgentOpsError)
    async def domain_error(_r: Request, exc: AgentOpsError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(StarletteHTTPException)  # also the router's own 404 and 405, not only the routes'
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_where(e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"error": "The request is not valid.", "problems": problems[:20]}, status_code=422)

    @app.exception_handler(OperationalError)
    async def database_down(_r: Request, exc: OperationalError) -> JSONResponse:
        if "no such table" in first_line(exc):  # SQLite's missing table is an OperationalError, not an outage
            return await schema_missing(_r, exc)
        log.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse({"error": "The database is unavailable; try again shortly."}, status_code=503)

    @app.exception_handler(ProgrammingError)
    async def schema_missing(_r: Request, exc: ProgrammingError) -> JSONResponse:
        log.warning("schema problem: %s", type(exc).__name__)
        return JSONResponse({"error": "The agent tables are missing; run `python -m core db setup`."}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"error": "Internal error; it has been logged."}, status_code=500)
