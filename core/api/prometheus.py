"""GET /metrics: request latency by route, and the agent system's state read at scrape time."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from core.auth import system_actor
from core.db import read_session
from core.models import AuditHead, WorkerHeartbeat, utcnow
from core.queries.health import live_worker_conditions
from core.queries.metrics import get_summary
from core.queries.settings import as_workers_see_it


class AgentStateCollector(Collector):
    """Conversations of the last hour by status, breaker states of live workers, the kill switch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _read(self) -> tuple:
        with read_session(self.engine) as s:
            summary = get_summary(s, actor=system_actor("metrics"), window_hours=1)
            state = as_workers_see_it(s)[0]  # the workers' own AGENT_SYSTEM_ENABLED, not this process's
            breakers = s.execute(select(WorkerHeartbeat.breaker_state, func.count()).where(
                *live_worker_conditions(utcnow()))
                .group_by(WorkerHeartbeat.breaker_state)).all()
            head = s.execute(select(AuditHead.seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
        return summary, state, breakers, head

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("agentops_database_up", "1 when the database answered this scrape")
        try:
            summary, state, breakers, head = self._read()
        except Exception:  # noqa: BLE001 - a scrape reports the outage instead of failing
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        convs = GaugeMetricFamily("agentops_conversations_last_hour", "Conversations created this hour and last, by status",
                                  labels=["status"])
        for status, n in summary.by_status.items():
            convs.add_metric([status], n)
        yield convs
        breaker = GaugeMetricFamily("agentops_workers_by_breaker_state", "Live workers by breaker state", labels=["state"])
        for st in ("closed", "open", "half_open"):
            breaker.add_metric([st], dict(breakers).get(st, 0))
        yield breaker
        switch = GaugeMetricFamily("agentops_kill_switch_engaged", "1 when no new conversation may start")
        switch.add_metric([], 0 if state.running else 1)
        yield switch
        version = GaugeMetricFamily("agentops_settings_version", "Version of the activation settings")
        version.add_metric([], state.version)
        yield version
        yield from _audit_head(*head)


def _audit_head(seq: int, last_hash: str) -> Iterator[GaugeMetricFamily]:
    """The audit chain's head, so the metrics store keeps a history of it outside the database.

    The hash prefix is a number (48 bits, exact in a float), not a label: one series, whatever the hash."""
    head = GaugeMetricFamily("agentops_audit_head_seq", "Sequence number of the newest audit record")
    head.add_metric([], seq)
    yield head
    prefix = GaugeMetricFamily("agentops_audit_head_hash_prefix",
                               "First 12 hex digits of the newest audit record's hash, as a number")
    prefix.add_metric([], int(last_hash[:12], 16))
    yield prefix


def make_registry(engine: Engine) -> tuple[CollectorRegistry, Histogram]:
    """A registry of this app's own (no process-global state shared between test apps)."""
    registry = CollectorRegistry()
    latency = Histogram("agentops_http_request_duration_seconds", "API request latency", ["route", "method", "status"],
                        registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
    registry.register(AgentStateCollector(engine))
    return registry, latency
