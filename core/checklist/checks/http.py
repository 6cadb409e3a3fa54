"""Checks over HTTP against the configured API (API_BASE_URL): liveness, readiness, auth, status, rate limit."""
from __future__ import annotations

import requests

from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, warned
from core.config import mask_url

TIMEOUT_SECONDS = 5.0
# An instance id no shop has: /activate with it never changes anything, whoever calls.
NO_SUCH_INSTANCE = 2_147_483_647
MAX_RATE_PROBE = 1000  # above this many requests per minute the check says so instead of sending them


def _get(ctx: CheckContext, path: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(ctx.api + path, headers=headers, timeout=TIMEOUT_SECONDS)


def _token(ctx: CheckContext) -> str | None:
    secret = ctx.settings.checklist_api_token
    return secret.get_secret_value() if secret else None


def check_liveness(ctx: CheckContext) -> Outcome:
    """GET /health answers 200 (the seed's `curl -f …/health`)."""
    resp = _get(ctx, "/health")
    return verdict(resp.status_code == 200, "GET /health", resp.status_code,
                   f"{mask_url(ctx.api)}/health answered {resp.status_code} in {resp.elapsed.total_seconds() * 1000:.0f} ms")


def check_readiness_endpoint(ctx: CheckContext) -> Outcome:
    """GET /api/v2/agents/health answers 200; a 503 names what fails."""
    resp = _get(ctx, "/api/v2/agents/health")
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    failing = body.get("failing") or {}
    detail = "; ".join(f"{k}: {v}" for k, v in failing.items()) or f"ok: {', '.join(body.get('ok', []))}"
    return verdict(resp.status_code == 200, "GET /api/v2/agents/health", resp.status_code, detail)


def _activate(ctx: CheckContext, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(ctx.api + "/api/v2/agents/activate", json={"instance_id": NO_SUCH_INSTANCE},
                         headers=headers, timeout=TIMEOUT_SECONDS).status_code


def check_activate_auth(ctx: CheckContext) -> Outcome:
    """POST /activate refuses a request without a token (401) and a role that may not activate (403)."""
    anonymous = _activate(ctx, None)
    token = _token(ctx)
    if token is None:
        return failed("POST /activate", {"no token": anonymous},
                      "CHECKLIST_API_TOKEN is not set: the wrong-role refusal (403) cannot be tested")
    wrong_role = _activate(ctx, token)
    value = {"no token": anonymous, "read-only token": wrong_role}
    if wrong_role == 404:
        return failed("POST /activate", value, "the CHECKLIST_API_TOKEN user may activate instances; give the check "
                                               "a read-only (product_owner or support) user's token")
    ok = anonymous == 401 and wrong_role == 403
    return verdict(ok, "POST /activate", value, "401 without a token, 403 for a read-only role" if ok else
                   "expected 401 without a token and 403 for a read-only role")


def check_status_endpoint(ctx: CheckContext) -> Outcome:
    """GET /api/v2/agents/status refuses no token (401) and accepts a valid one (200)."""
    anonymous = _get(ctx, "/api/v2/agents/status").status_code
    token = _token(ctx)
    if token is None:
        return failed("GET /api/v2/agents/status", {"no token": anonymous}, "CHECKLIST_API_TOKEN is not set")
    resp = _get(ctx, "/api/v2/agents/status", token)
    value = {"no token": anonymous, "valid token": resp.status_code}
    mode = resp.json().get("activation", {}).get("mode") if resp.status_code == 200 else None
    ok = anonymous == 401 and resp.status_code == 200
    return verdict(ok, "GET /api/v2/agents/status", value,
                   f"401 without a token; 200 with one (mode {mode})" if ok else
                   "expected 401 without a token and 200 with CHECKLIST_API_TOKEN")


def check_rate_limit(ctx: CheckContext) -> Outcome:
    """Requests beyond the configured per-minute limit under /api/v2/agents/ answer 429."""
    limit = ctx.settings.api_rate_limit_per_minute
    if limit > MAX_RATE_PROBE:
        return warned("rate limit", limit, f"{limit} per minute is more than this check sends ({MAX_RATE_PROBE})")
    token = _token(ctx)  # a proven token has a budget of its own: the unauthenticated checks keep theirs
    with requests.Session() as http:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for sent in range(1, limit + 2):
            resp = http.get(ctx.api + "/api/v2/agents/status", headers=headers, timeout=TIMEOUT_SECONDS)
            if resp.status_code == 429:
                return passed("requests until 429", sent, f"limit {limit}/min; Retry-After "
                                                          f"{resp.headers.get('Retry-After', '?')} s")
    return failed("requests until 429", limit + 1, f"{limit + 1} requests in a row were all answered; no 429")
