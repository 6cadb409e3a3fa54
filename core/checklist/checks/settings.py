"""Checks of the configuration: database URL, agent variables, API keys, retries, breakers, the deploy hook."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import make_url

from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, warned
from core.config import mask_secret, mask_url
from core.db import read_session
from core.models import WorkerHeartbeat, utcnow
from core.queries.health import live_worker_conditions

AGENT_VARIABLES = ("agent_system_enabled", "agent_log_level", "agent_max_concurrent", "agent_retry_attempts",
                   "agent_timeout_seconds")
# The key formats of the seed's staging keys; a live Stripe key has no place outside production.
KEY_PREFIXES = {"openai_api_key": ("sk-",), "stripe_secret_key": ("sk_test_", "rk_test_"),
                "sendgrid_api_key": ("SG.",)}


def check_database_url(ctx: CheckContext) -> Outcome:
    """DATABASE_URL is set and, outside development, points at PostgreSQL (value masked)."""
    url = ctx.settings.database_url
    shown = mask_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return passed("DATABASE_URL", shown, "a PostgreSQL connection is configured")
    if ctx.environment == "development":
        return warned("DATABASE_URL", shown, f"{backend} (the embedded default); staging needs PostgreSQL")
    return failed("DATABASE_URL", shown, f"{ctx.environment} needs PostgreSQL, not {backend}")


def check_agent_variables(ctx: CheckContext) -> Outcome:
    """The seed's AGENT_* variables are set, valid, and the system is enabled."""
    s = ctx.settings
    values = {name.upper(): getattr(s, name) for name in AGENT_VARIABLES}
    unset = [name.upper() for name in AGENT_VARIABLES if name not in s.model_fields_set]
    if not s.agent_system_enabled:
        return failed("AGENT_* variables", values, "AGENT_SYSTEM_ENABLED=false: the agent system is switched off")
    if unset:
        return warned("AGENT_* variables", values, f"not set, defaults in use: {', '.join(unset)}")
    return passed("AGENT_* variables", values, "all set and valid")


def check_api_keys(ctx: CheckContext) -> Outcome:
    """OPENAI_API_KEY, STRIPE_SECRET_KEY and SENDGRID_API_KEY are present and look like their kind (masked)."""
    s, shown, problems = ctx.settings, {}, []
    for name, prefixes in KEY_PREFIXES.items():
        secret = getattr(s, name)
        value = secret.get_secret_value() if secret else ""
        shown[name.upper()] = mask_secret(value)
        if not value:
            problems.append(f"{name.upper()} is not set")
        elif name == "stripe_secret_key" and ctx.environment == "production" and value.startswith("sk_live_"):
            continue
        elif name == "openai_api_key" and s.openai_base_url:
            continue  # an OpenAI-compatible server of one's own takes keys of its own form
        elif not value.startswith(prefixes):
            problems.append(f"{name.upper()} does not start with {' or '.join(prefixes)}")
    return verdict(not problems, "API keys", shown, "; ".join(problems) or "all present and well-formed")


def check_db_retries(ctx: CheckContext) -> Outcome:
    """Database operations retry (the seed's attempts=3, delay=1.0, backoff=2.0 live in config)."""
    s = ctx.settings
    value = {"attempts": s.db_retry_attempts, "delay_s": s.db_retry_delay_seconds, "backoff": s.db_retry_backoff}
    if s.db_retry_attempts < 2:
        return failed("DB_RETRY_*", value, "DB_RETRY_ATTEMPTS=1: a database blip is not retried")
    return passed("DB_RETRY_*", value, f"{s.db_retry_attempts} attempts, {s.db_retry_delay_seconds:g} s first delay, "
                                        f"backoff x{s.db_retry_backoff:g}")


def check_breakers(ctx: CheckContext) -> Outcome:
    """The model calls' circuit breaker is configured and closed on every live worker."""
    s = ctx.settings
    with read_session(ctx.engine) as session:
        states = dict(session.execute(select(WorkerHeartbeat.id, WorkerHeartbeat.breaker_state)
                                      .where(*live_worker_conditions(utcnow()))).all())
    value = {"failure_threshold": s.breaker_failure_threshold, "reset_s": s.breaker_reset_seconds,
             "retry_attempts": s.agent_retry_attempts, "workers": states}
    opened = sorted(w for w, state in states.items() if state == "open")
    if opened:
        return failed("circuit breakers", value, f"open on {', '.join(opened)}: model calls are being deferred")
    if not states:
        return warned("circuit breakers", value, "configured; no live worker to report its breaker")
    return passed("circuit breakers", value, f"configured and closed on {len(states)} live worker(s)")


def check_deploy_hook(ctx: CheckContext) -> Outcome:
    """The full rollback has a deploy hook to call (described without secrets)."""
    from core.services.rollbacks import describe_deploy_hook

    s = ctx.settings
    configured = bool(s.deploy_hook_url or s.deploy_hook_command)
    return verdict(configured, "deploy hook", describe_deploy_hook(),
                   f"the full rollback returns from release {s.release_id}" if configured else
                   "no deploy hook: the full rollback cannot run")
