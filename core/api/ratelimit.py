"""Fixed-window rate limits per token (or per client address): in memory, or shared through Redis."""
from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    retry_after_s: int


class MemoryLimiter:
    """Counts per (identity, minute) in this process; old windows are dropped as time moves on."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.time) -> None:
        self.limit, self._clock = limit, clock
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, identity: str) -> Verdict:
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            n = self._counts.get((identity, window), 0) + 1
            self._counts[(identity, window)] = n
        return _verdict(n, self.limit, now)


class RedisLimiter:
    """The same counts in Redis (INCR + EXPIRE), so every API replica shares one limit."""

    def __init__(self, limit: int, url: str, clock: Callable[[], float] = time.time) -> None:
        import redis

        self.limit, self._clock = limit, clock
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def hit(self, identity: str) -> Verdict:
        now = self._clock()
        key = f"agentops:rl:{identity}:{int(now // WINDOW_SECONDS)}"
        pipe = self._redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS + 5)
        n, _ = pipe.execute()
        return _verdict(int(n), self.limit, now)


def _verdict(n: int, limit: int, now: float) -> Verdict:
    retry = int(WINDOW_SECONDS - (now % WINDOW_SECONDS)) + 1
    return Verdict(allowed=n <= limit, remaining=max(0, limit - n), retry_after_s=retry)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: str) -> str:
    """The caller's address: the connection's, unless it came through a configured trusted proxy."""
    peer = peer or "unknown"
    trusted = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies.split(",") if p.strip()]

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not forwarded_for or not is_trusted(peer):
        return peer
    # Walk X-Forwarded-For from the right: the first hop that is not a trusted proxy is the client.
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not is_trusted(hop):
            return hop
    return peer
