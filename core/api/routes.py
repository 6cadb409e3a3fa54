"""The routes only translate: every decision and change goes through the same core functions as the console."""
from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from core.auth import Actor, Role
from core.db import read_session
from core.errors import NotFound, PermissionDenied
from core.queries.conversations import get_conversation_or_raise
from core.queries.readiness import check_readiness
from core.queries.status import get_status
from core.read_routing import run_read
from core.services.controls import set_instance_status
from core.services.guard import record_refusal
from core.uow import UnitOfWork
from core.api.security import bearer, require_actor

router = APIRouter()
# Ids beyond the columns' range are refused as invalid input, not passed to the database.
MAX_INT32, MAX_INT64 = 2**31 - 1, 2**63 - 1
# Shop and enterprise owners see their own shops' state, never the operators' names or reasons.
OWNER_ROLES = (Role.SHOP_OWNER, Role.ENTERPRISE_OWNER)
OPERATOR_ONLY = ("changed_by", "reason")


class InstanceChange(BaseModel):
    """Activate or pause one agent instance."""

    model_config = ConfigDict(extra="forbid")
    instance_id: StrictInt = Field(gt=0, le=MAX_INT32)  # strict: true is not instance 1
    reason: str = Field(default="", max_length=500)

    @field_validator("reason")
    @classmethod
    def _storable(cls, value: str) -> str:
        if "\x00" in value:  # PostgreSQL cannot store it (the request failed with a 500)
            raise ValueError("may not contain NUL characters")
        return value


@router.get("/health", tags=["health"])
def liveness() -> dict[str, str]:
    """Liveness: the process answers; the database is not touched."""
    return {"status": "ok"}


@router.get("/api/v2/agents/health", tags=["health"])
def readiness(request: Request) -> JSONResponse:
    """Readiness: database (with query time), schema, live workers, breakers, kill switch. 503 names what fails."""
    result = check_readiness(request.app.state.engine)
    return JSONResponse(result.as_dict(), status_code=200 if result.healthy else 503)


@router.get("/api/v2/agents/status", tags=["agents"])
def status(request: Request, actor: Actor = Depends(require_actor)) -> dict[str, Any]:
    """Activation mode and scope, state per agent type, instances, and the last hour from the rollups."""
    def compute() -> dict[str, Any]:
        engine = request.app.state.engine
        with read_session(engine) as s:  # the switch from the primary, the last hour's figures from the replica
            return run_read(lambda figures: get_status(s, actor=actor, figures=figures), primary=engine)

    return _as_seen_by(actor, request.app.state.status_cache.get(actor.scope_key, compute))


def _as_seen_by(actor: Actor, status: dict[str, Any]) -> dict[str, Any]:
    """STATUS without what only operators may know, for shop and enterprise owners (a copy: the cache is shared)."""
    if actor.role not in OWNER_ROLES:
        return status
    activation = {k: v for k, v in status["activation"].items() if k not in OPERATOR_ONLY}
    activation["allowed_shops"] = [shop for shop in activation["allowed_shops"] if actor.sees_shop(shop)]
    return {**status, "activation": activation}


def _change_instance(request: Request, actor: Actor, body: InstanceChange, status: str) -> dict[str, Any]:
    inst = set_instance_status(actor=actor, instance_id=body.instance_id, status=status,
                               reason=body.reason or f"via API by {actor.username}",
                               uow=UnitOfWork(request.app.state.engine))
    return {"instance_id": inst.id, "shop_id": inst.shop_id, "agent_type": inst.agent_type, "status": inst.status}


@router.post("/api/v2/agents/activate", tags=["agents"])
def activate(request: Request, body: InstanceChange, actor: Actor = Depends(require_actor)) -> dict[str, Any]:
    """Activate an agent instance (shop owners: their shop; enterprise owners: their shops; engineers: all)."""
    return _change_instance(request, actor, body, "active")


@router.post("/api/v2/agents/deactivate", tags=["agents"])
def deactivate(request: Request, body: InstanceChange, actor: Actor = Depends(require_actor)) -> dict[str, Any]:
    """Pause an agent instance."""
    return _change_instance(request, actor, body, "paused")


@router.get("/api/v2/agents/conversations/{conversation_id}", tags=["agents"])
def conversation(request: Request, conversation_id: int = Path(gt=0, le=MAX_INT64),
                 actor: Actor = Depends(require_actor)) -> dict[str, Any]:
    """A conversation and the client behind it; 404 when it does not exist or is outside the caller's shops.

    Both answers are the same, so the API never tells an outsider that an id exists or which shop it belongs to;
    the attempt on another shop's client is still audited as an unauthorized read."""
    engine = request.app.state.engine
    try:
        with read_session(engine) as s:
            return get_conversation_or_raise(s, actor=actor, conversation_id=conversation_id)
    except PermissionDenied as exc:
        record_refusal(actor=actor, action="conversation.read", target=f"conversation {conversation_id}",
                       reason=str(exc), uow=UnitOfWork(engine))
    except NotFound:
        pass
    raise NotFound(f"No conversation with id {conversation_id}.")


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
    """Prometheus exposition format; needs METRICS_TOKEN as bearer when set, and outside development."""
    settings = request.app.state.settings
    if settings.metrics_token is None and settings.environment != "development":
        raise HTTPException(status_code=404, detail="Not Found")
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if expected is not None and not (creds and hmac.compare_digest(creds.credentials.encode(), expected.encode())):
        raise HTTPException(status_code=401, detail="/metrics needs the METRICS_TOKEN as a bearer token.",
                            headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
