"""Issue 4: GET /api/v2/agents/status under load from wrk (a second process), on 1,000,000 conversations."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

import requests

from bench.common import loaded_postgres, table, use_database
from tests.support.net import free_port


def _token(url: str) -> str:
    from core.auth import system_actor
    from core.errors import Conflict
    from core.services import tokens, users
    from core.uow import UnitOfWork

    engine = use_database(url)
    try:
        users.add_user(actor=system_actor("bench"), username="bench-engineer", password="bench password",
                       role="engineer", uow=UnitOfWork(engine))
    except Conflict:
        pass
    return tokens.create_token(actor=system_actor("bench"), username="bench-engineer", uow=UnitOfWork(engine),
                               expires_days=1).token


def _wrk(url: str, token: str, seconds: int, connections: int) -> tuple[float, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H",
                          f"Authorization: Bearer {token}", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn processes (wrk and PostgreSQL share the 2 cores)")
    args, _ = ap.parse_known_args(argv)
    if not shutil.which("wrk"):
        return table("Agent API", [("GET /api/v2/agents/status", "not run: wrk is not installed", "p99 < 100 ms", "–")])
    url = loaded_postgres()
    token = _token(url)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "API_RATE_LIMIT_PER_MINUTE": "100000000", "AGENT_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "core", "api", "--port", str(port), "--workers", str(args.workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        rps, p99 = _wrk(base + "/api/v2/agents/status", token, args.seconds, args.connections)
        live_rps, live_p99 = _wrk(base + "/health", token, 5, args.connections)
    finally:
        server.terminate()
        server.wait(timeout=20)
    return table(f"Agent API (PostgreSQL, 1,000,000 conversations, wrk {args.connections} connections, "
                 f"{args.seconds} s, {args.workers} uvicorn processes, status cached 1 s per scope)", [
        ("GET /api/v2/agents/status: requests/s", f"{rps:,.0f}", "–", f"GET /health (no database): {live_rps:,.0f}/s"),
        ("GET /api/v2/agents/status: p99 latency", f"{p99:.1f} ms", "< 100 ms", f"GET /health p99: {live_p99:.1f} ms"),
    ])
