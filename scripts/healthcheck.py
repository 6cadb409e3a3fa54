"""The image's HEALTHCHECK for one role: exit 0 when healthy, 1 with one line saying why not.

console and api: their health endpoint answers 200. worker: this host's worker wrote a heartbeat within the window
the console uses to call a worker alive. probe, alerts and one-off commands have no endpoint: the process running
is the check (the container stops when it exits).
"""
from __future__ import annotations

import os
import socket
import sys
import urllib.request
from collections.abc import Callable, Mapping

TIMEOUT_SECONDS = 4


def console_health_url(env: Mapping[str, str]) -> str:
    """The console's health endpoint, under STREAMLIT_SERVER_BASE_URL_PATH when it runs behind a proxy path."""
    base = env.get("STREAMLIT_SERVER_BASE_URL_PATH", "").strip("/")
    return f"http://127.0.0.1:{env.get('PORT', '8501')}{'/' + base if base else ''}/_stcore/health"


def api_health_url(env: Mapping[str, str]) -> str:
    """The agent API's liveness endpoint."""
    return f"http://127.0.0.1:{env.get('API_PORT', '8000')}/health"


def check_http(url: str) -> tuple[bool, str]:
    """Whether URL answers 200 within the timeout."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except OSError as exc:
        return False, f"{url}: {getattr(exc, 'reason', exc)}"


def check_worker() -> tuple[bool, str]:
    """Whether a worker on this host has a live heartbeat (read through core, as the console reads it)."""
    from core.auth import system_actor
    from core.db import get_engine, read_session
    from core.queries.health import list_workers

    host = socket.gethostname()
    try:
        with read_session(get_engine()) as session:
            workers = list_workers(session, actor=system_actor("healthcheck"))
    except Exception as exc:  # noqa: BLE001 - any failure to read is "not healthy", said in one line
        return False, f"cannot read worker heartbeats: {str(exc).splitlines()[0]}"
    alive = [w["worker"] for w in workers if w["host"] == host and w["alive"]]
    if not alive:
        return False, f"no live worker heartbeat from {host}"
    return True, f"live worker on {host}: {', '.join(alive)}"


CHECKS: dict[str, Callable[[], tuple[bool, str]]] = {
    "console": lambda: check_http(console_health_url(os.environ)),
    "api": lambda: check_http(api_health_url(os.environ)),
    "worker": check_worker,
}


def main(role: str) -> int:
    """Run ROLE's check; roles without an endpoint are healthy while they run."""
    check = CHECKS.get(role)
    if check is None:
        print(f"{role}: no health endpoint; healthy while the process runs")
        return 0
    ok, detail = check()
    print(f"{role}: {'healthy' if ok else 'UNHEALTHY'} ({detail})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "none"))
