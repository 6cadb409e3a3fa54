"""Errors to Sentry when SENTRY_DSN is set: each once, tagged with its component and, in the worker, its agent."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sentry_sdk

from core.config import Settings

# The worker logs each failed conversation here and reports its exception itself, tagged: this line
# must not become a second, untagged event.
REPORTED_LOG = logging.getLogger("core.worker.reported")
_initialised = False


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Start the SDK once per process when a DSN is configured; COMPONENT is worker, api, console or cli."""
    global _initialised
    if not settings.sentry_dsn or _initialised:
        return _initialised
    from sentry_sdk.integrations.logging import ignore_logger
    from sentry_sdk.integrations.openai import OpenAIIntegration

    sentry_sdk.init(dsn=settings.sentry_dsn.get_secret_value(), environment=settings.environment,
                    traces_sample_rate=1.0 if settings.environment != "production" else 0.1,
                    send_default_pii=False,
                    # It captures every failed model attempt (three per conversation with retries), untagged,
                    # before the worker's one report; deduplication then dropped the tagged event.
                    disabled_integrations=[OpenAIIntegration()])
    ignore_logger(REPORTED_LOG.name)
    # The global scope, not the current one: conversations run on pool threads with scopes of their own.
    sentry_sdk.get_global_scope().set_tags({"component": component, "environment": settings.environment})
    _initialised = True
    return True


@contextmanager
def conversation_scope(conversation_id: int) -> Iterator[None]:
    """Everything captured inside carries this conversation's tags (agent ones follow via `tag_agent`)."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tags({"conversation_id": str(conversation_id), "agent_type": "unknown", "shop_id": "unknown"})
        yield


def tag_agent(*, agent_type: str, shop_id: int) -> None:
    """Name the agent type and shop of the conversation in scope, once they are read."""
    sentry_sdk.get_current_scope().set_tags({"agent_type": agent_type, "shop_id": str(shop_id)})


def report(exc: BaseException) -> None:
    """Send EXC with the tags of the current scope (a no-op without a DSN)."""
    sentry_sdk.capture_exception(exc)


def envelope_request(settings: Settings, *, message: str, level: str, tags: dict[str, str], component: str,
                     event_id: str) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and headers that deliver one message event (EVENT_ID, the same for every retry of it, so the
    ingest keeps one) to the DSN's ingest, for a caller that must know whether it was accepted."""
    from datetime import datetime, timezone

    from sentry_sdk.envelope import Envelope
    from sentry_sdk.utils import Dsn

    dsn = Dsn(settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else "")
    auth = dsn.to_auth(client=f"sentry.python/{sentry_sdk.VERSION}")
    event = {"event_id": event_id, "timestamp": datetime.now(timezone.utc).isoformat(),
             "platform": "python", "level": level, "environment": settings.environment,
             "logentry": {"message": message}, "message": message,
             "tags": {"component": component, "environment": settings.environment, **tags}}
    envelope = Envelope(headers={"event_id": event_id})  # no "dsn": its text would carry a secret key
    envelope.add_event(event)
    headers = {"X-Sentry-Auth": auth.to_header(), "Content-Type": "application/x-sentry-envelope"}
    return auth.get_api_url(), envelope.serialize(), headers
