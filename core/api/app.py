"""The FastAPI app factory: routes, rate limits, body limits, errors as JSON, request metrics."""
from __future__ import annotations

import hashlib
import logging
import time

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from core.api.cache import TTLCache
from core.api.limits import BodyLimitMiddleware
from core.api.prometheus import make_registry
from core.api.ratelimit import MemoryLimiter, RedisLimiter, client_address
from core.api.routes import router
from core.config import Settings, get_settings
from core.db import get_engine
from core.errors import AgentOpsError

log = logging.getLogger("core.api")
LIMITED_PREFIX = "/api/v2/agents/"


def create_app(*, engine: Engine | None = None, settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve app; nothing connects until the first request."""
    settings = settings or get_settings()
    app = FastAPI(title="BookedBarber V2 agent API", version="2.0",
                  description="Health, status and activation of the agent system.")
    app.state.engine = engine or get_engine()
    app.state.settings = settings
    app.state.registry, latency = make_registry(app.state.engine)
    app.state.status_cache = TTLCache(settings.api_status_cache_seconds)
    # A token's user is looked up at most once a second: revoking a token takes effect within that second.
    app.state.token_cache = TTLCache(settings.api_token_cache_seconds)
    limit = settings.api_rate_limit_per_minute
    app.state.limiter = RedisLimiter(limit, settings.redis_url) if settings.redis_url else MemoryLimiter(limit)
    app.include_router(router)
    _install_handlers(app)

    @app.middleware("http")
    async def limit_and_time(request: Request, call_next):  # noqa: ANN202
        started, verdict = time.perf_counter(), None
        if request.url.path.startswith(LIMITED_PREFIX) or request.url.path == LIMITED_PREFIX.rstrip("/"):
            verdict = app.state.limiter.hit(_identity(request, settings))
            if not verdict.allowed:
                return JSONResponse({"error": f"Rate limit of {limit} requests per minute reached."}, status_code=429,
                                    headers={"Retry-After": str(verdict.retry_after_s), "X-RateLimit-Remaining": "0"})
        response = await call_next(request)
        if verdict is not None:
            response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        route = request.scope.get("route")
        latency.labels(getattr(route, "path", "unmatched"), request.method, str(response.status_code)).observe(
            time.perf_counter() - started)
        return response

    app.add_middleware(BodyLimitMiddleware)
    return app


def _identity(request: Request, settings: Settings) -> str:
    """Per token when one is sent, else per client address."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and len(auth) > 7:
        return "token:" + hashlib.sha256(auth[7:].strip().encode()).hexdigest()[:24]
    peer = request.client.host if request.client else None
    return "ip:" + client_address(peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies)


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

    @app.exception_handler(HTTPException)
    async def http_error(_r: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_where(e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"error": "The request is not valid.", "problems": problems[:20]}, status_code=422)

    @app.exception_handler(OperationalError)
    async def database_down(_r: Request, exc: OperationalError) -> JSONResponse:
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
