"""Failures reported to Sentry when SENTRY_DSN is set, tagged so they can be found by agent and shop."""
from __future__ import annotations

import logging

import sentry_sdk
from sqlalchemy import Engine, select

from core.config import Settings
from core.db import read_session
from core.models import Conversation

log = logging.getLogger(__name__)
_initialised = False


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Start the Sentry SDK once per process when a DSN is configured."""
    global _initialised
    if not settings.sentry_dsn or _initialised:
        return _initialised
    sentry_sdk.init(dsn=settings.sentry_dsn.get_secret_value(), environment=settings.environment,
                    traces_sample_rate=1.0 if settings.environment != "production" else 0.1,
                    send_default_pii=False)
    sentry_sdk.set_tag("component", component)
    _initialised = True
    return True


def report_failure(exc: BaseException, *, settings: Settings, engine: Engine, conversation_id: int) -> None:
    """Send a failed conversation's exception to Sentry with agent_type, shop_id, conversation_id, environment."""
    if not settings.sentry_dsn:
        return
    try:
        with read_session(engine) as s:
            row = s.execute(select(Conversation.agent_type, Conversation.shop_id)
                            .where(Conversation.id == conversation_id)).one_or_none()
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("agent_type", row.agent_type if row else "unknown")
            scope.set_tag("shop_id", str(row.shop_id) if row else "unknown")
            scope.set_tag("conversation_id", str(conversation_id))
            scope.set_tag("environment", settings.environment)
            sentry_sdk.capture_exception(exc)
    except Exception as err:  # noqa: BLE001 - reporting must never break the worker
        log.warning("could not report to Sentry: %s", type(err).__name__)
