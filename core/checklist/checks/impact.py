"""Main-application impact < 5 %: a configured probe of the host application, timed before and after activation.

The first measurement taken while the agents are off is the baseline; later ones, with the agents running, are
compared with it. The median of several samples keeps one slow request from deciding."""
from __future__ import annotations

import statistics
import time

import requests
from sqlalchemy import text

from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict, warned
from core.config import mask_urls_in_text
from core.db import read_session
from core.queries.settings import get_activation_state

TIMEOUT_SECONDS = 5.0


def _sample_ms(ctx: CheckContext, probe: str) -> float:
    started = time.perf_counter()
    if probe.startswith(("http://", "https://")):
        requests.get(probe, timeout=TIMEOUT_SECONDS).raise_for_status()
    else:
        with ctx.engine.connect() as conn:
            conn.execute(text(probe)).all()
    return (time.perf_counter() - started) * 1000


def _baseline(ctx: CheckContext, item_id: str) -> float | None:
    for result in ctx.history(item_id):  # oldest first
        value = (result.get("evidence") or {}).get("value") or {}
        if isinstance(value, dict) and value.get("agents") == "off" and value.get("median_ms") is not None:
            return float(value["median_ms"])
    return None


def check_main_app_impact(ctx: CheckContext, item_id: str = "functional.impact") -> Outcome:
    """The host probe's median time with the agents running is within SC_MAIN_IMPACT_PERCENT of the baseline."""
    probe = ctx.settings.checklist_host_probe
    if not probe:
        return failed("main application probe", None, "no probe configured (CHECKLIST_HOST_PROBE: a URL or SQL)")
    samples = [_sample_ms(ctx, probe) for _ in range(ctx.settings.checklist_host_probe_samples)]
    with read_session(ctx.engine) as s:
        running = get_activation_state(s).running
    median = statistics.median(samples)
    value = {"probe": mask_urls_in_text(probe)[:200], "median_ms": round(median, 2), "samples": len(samples),
             "agents": "running" if running else "off"}
    baseline = _baseline(ctx, item_id)
    if not running:
        return passed("main application probe (ms)", value, f"baseline {median:.1f} ms with the agents off")
    if baseline is None:
        return warned("main application probe (ms)", value, "no baseline: run this item once before activation")
    impact = (median - baseline) / baseline * 100 if baseline > 0 else 0.0
    limit = ctx.settings.sc_main_impact_percent
    value.update(baseline_ms=round(baseline, 2), impact_percent=round(impact, 1))
    return verdict(impact < limit, "main application probe (ms)", value,
                   f"{median:.1f} ms against {baseline:.1f} ms before activation: {impact:+.1f} % (limit {limit:g} %)")
