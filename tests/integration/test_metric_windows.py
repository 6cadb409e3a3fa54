"""Windows are the last 60 minutes / 24 hours / 7 days / 30 days to the minute: whole hours (and days) from the
rollups, the partial hours at each end from raw rows. Every figure must equal what raw rows say, on both databases."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, func, select

from core.auth import system_actor
from core.db import read_session
from core.models import (
    AgentMetricDaily, AgentMetricDailyByShop, AgentMetricDailyByType, AgentResponseDailyByShop,
    AgentResponseDailyByType, Conversation, utcnow,
)
from core.queries import metrics
from core.queries import rollup_reads
from core.queries.rollup_reads import plan_window
from core.rollups import BUCKET_RATIO, bucket_of
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal

ACTOR = system_actor("test")
STATUSES = ("completed", "failed", "opted_out", "pending", "in_progress", "waiting_response")


def figures(engine: Engine, hours: int, actor=ACTOR, now: datetime | None = None) -> tuple:  # noqa: ANN001
    with read_session(engine) as s:
        summary = metrics.get_summary(s, actor=actor, window_hours=hours, now=now)
        series = metrics.get_timeseries(s, actor=actor, window_hours=hours, now=now)
        by_type = metrics.get_breakdown(s, actor=actor, window_hours=hours, by="agent_type", top=20, now=now)
        by_shop = metrics.get_breakdown(s, actor=actor, window_hours=hours, by="shop", top=20, now=now)
    return summary.as_dict(), series, by_type, by_shop


def raw(engine: Engine, since: datetime, shops: set[int] | None = None) -> dict:
    """The same figures counted here from the conversations themselves."""
    with read_session(engine) as s:
        rows = [r for r in s.execute(select(Conversation.status, Conversation.response_time_ms, Conversation.shop_id)
                                     .where(Conversation.created_at >= since)) if shops is None or r.shop_id in shops]
    times = sorted(r.response_time_ms for r in rows if r.status == "completed")
    by_status = {st: sum(1 for r in rows if r.status == st) for st in STATUSES}
    finished = by_status["completed"] + by_status["failed"]
    return {"conversations": len(rows), "by_status": by_status,
            "error_rate": by_status["failed"] / finished if finished else None,
            "p95": times[math.ceil(0.95 * len(times)) - 1] if times else None}


def assert_true_to_raw_rows(engine: Engine, hours: int, actor=ACTOR,  # noqa: ANN001
                            shops: set[int] | None = None, now: datetime | None = None) -> None:
    before = now or utcnow()
    summary, series, by_type, by_shop = figures(engine, hours, actor, now)
    since = datetime.fromisoformat(summary["since"])
    assert before - timedelta(hours=hours, minutes=1) < since <= before - timedelta(hours=hours), "to the minute"
    truth = raw(engine, since, shops)
    assert summary["conversations"] == truth["conversations"] > 0
    assert summary["by_status"] == truth["by_status"]
    assert summary["error_rate"] == pytest.approx(truth["error_rate"])
    assert abs(summary["p95_response_ms"] - truth["p95"]) / truth["p95"] <= math.sqrt(BUCKET_RATIO) - 1
    step = {1: timedelta(minutes=5), 24: timedelta(hours=1)}.get(hours, timedelta(days=1))
    periods = [r["period"] for r in series]
    assert periods[0] <= since < periods[0] + step and periods[-1] <= before < periods[-1] + step + timedelta(minutes=1)
    assert all(b - a == step for a, b in zip(periods, periods[1:])), "one row per whole period, none in between"
    for rows in (series, by_type, by_shop):
        assert sum(r["created"] for r in rows) == truth["conversations"]
        assert sum(r["failed"] for r in rows) == truth["by_status"]["failed"]


@pytest.mark.parametrize("hours", [1, 24])
def test_short_windows_are_the_last_minutes_not_the_clock_hours(engine: Engine, hours: int) -> None:
    seed_minimal(engine, conversations=2000, days=2)  # about 40 an hour, so the partial hours matter
    assert_true_to_raw_rows(engine, hours)


def test_long_windows_agree_with_raw_rows_with_and_without_daily_rollups(engine: Engine) -> None:
    seed_minimal(engine, conversations=600, days=12)
    with read_session(engine) as s:
        plan = plan_window(s, actor=ACTOR, since=metrics.window_bounds(720)[0])
    assert len(plan.days) >= 10, "whole days come from the daily rollups"
    for hours in (24 * 7, 24 * 30):
        assert_true_to_raw_rows(engine, hours)
    with_daily = figures(engine, 720)
    with UnitOfWork(engine) as uow:
        for model in (AgentMetricDaily, AgentMetricDailyByType, AgentMetricDailyByShop, AgentResponseDailyByType,
                      AgentResponseDailyByShop):
            uow.session.execute(delete(model))
        uow.commit()
    assert figures(engine, 720)[1:] == with_daily[1:]
    assert_true_to_raw_rows(engine, 720)


def test_scoped_users_read_only_their_shops(engine: Engine) -> None:
    seed_minimal(engine, conversations=1000, days=10)
    for hours in (1, 24 * 30):
        assert_true_to_raw_rows(engine, hours, actor=ROLE_ACTORS["shop_owner"], shops={1})
    with read_session(engine) as s:
        everyone = s.scalar(select(func.count()).select_from(Conversation))
    assert figures(engine, 720, ROLE_ACTORS["shop_owner"])[0]["conversations"] < everyone


def test_the_plan_reads_at_most_half_an_hour_of_raw_rows(engine: Engine) -> None:
    """The partial hour at the start: its minutes in the window read raw, or, when fewer, the minutes before the
    window read raw and taken away from that whole hour (traffic per minute is what raw minutes cost)."""
    hour = timedelta(hours=1)
    with read_session(engine) as s:
        def plan(hours: int, now: datetime) -> rollup_reads.Plan:
            return plan_window(s, actor=ACTOR, since=metrics.window_bounds(hours, now)[0], now=now)
        eight_past = datetime(2026, 11, 25, 11, 8, 30, tzinfo=timezone.utc)
        last_hour, last_day = plan(1, eight_past), plan(24, eight_past)
        late = datetime(2026, 11, 25, 11, 38, 30, tzinfo=timezone.utc)
        late_hour, late_day = plan(1, late), plan(24, late)
    ten, eleven = datetime(2026, 11, 25, 10, tzinfo=timezone.utc), datetime(2026, 11, 25, 11, tzinfo=timezone.utc)
    # 10:08–11:08: the whole of 10:00–11:00 from the rollups less the 8 minutes before 10:08; the current hour from its
    # hourly rows (they hold everything created so far), never raw.
    assert (last_hour.raw, last_hour.minus) == ([], [(ten, ten.replace(minute=8))])
    assert last_hour.hourly == [(ten, None)]
    assert (last_day.raw, last_day.minus) == ([], [(eleven - 24 * hour, eleven - 24 * hour + timedelta(minutes=8))])
    assert last_day.hourly == [(eleven - 24 * hour, None)]
    # 10:38–11:38: the 22 minutes to 11:00 raw, nothing taken away.
    assert (late_hour.raw, late_hour.minus, late_hour.hourly) == ([(ten.replace(minute=38), eleven)], [],
                                                                  [(eleven, None)])
    assert late_day.raw == [(ten.replace(minute=38) - 23 * hour, eleven - 23 * hour)] and not late_day.minus
    assert metrics.describe_window(*metrics.window_bounds(1, eight_past)) == "10:08–11:08 UTC"


@pytest.mark.parametrize("minute", [10, 50])
@pytest.mark.parametrize("hours", [1, 24, 720])
def test_figures_are_exact_whichever_side_of_the_half_hour_the_window_starts(engine: Engine, hours: int,
                                                                            minute: int) -> None:
    """Minute 10: the whole first hour less 10 raw minutes; minute 50: 10 raw minutes added."""
    seed_minimal(engine, conversations=1500, days=3)
    now = utcnow()
    now += timedelta(minutes=(minute - now.minute) % 60)  # ahead of the clock: nothing is created in between
    assert_true_to_raw_rows(engine, hours, now=now)


def test_a_single_remaining_agent_type_is_named_not_other_1(engine: Engine) -> None:
    seed_minimal(engine, conversations=400, days=2)
    with read_session(engine) as s:
        rows = metrics.get_breakdown(s, actor=ACTOR, window_hours=48, by="agent_type", top=8)
        types = s.scalar(select(func.count(func.distinct(Conversation.agent_type))))
    assert types == 9 and len(rows) == 9
    assert not [r for r in rows if r["name"].startswith("other")]


@pytest.mark.parametrize("by", [None, "agent_type", "shop_id", "day"])
def test_a_months_histograms_hold_every_response_time_of_the_window(engine: Engine, by: str | None) -> None:
    """Whole days, whole hours and the partial hour added up: bucket for bucket what the raw rows say, for an
    unscoped user and one who sees a single shop."""
    seed_minimal(engine, conversations=900, days=12)
    for actor, shops in ((ACTOR, None), (ROLE_ACTORS["support"], {1})):
        with read_session(engine) as s:
            since = metrics.window_bounds(720)[0]
            plan = plan_window(s, actor=actor, since=since)
            stored = rollup_reads.histograms(s, actor=actor, plan=plan, by=by)
            rows = s.execute(select(Conversation).where(
                Conversation.created_at >= since, Conversation.status == "completed",
                Conversation.response_time_ms.is_not(None))).scalars().all()
        truth: dict = defaultdict(Counter)
        for c in rows:
            if shops is None or c.shop_id in shops:
                key = {None: None, "agent_type": c.agent_type, "shop_id": c.shop_id,
                       "day": c.created_at.replace(hour=0, minute=0, second=0, microsecond=0)}[by]
                truth[key][bucket_of(c.response_time_ms)] += 1
        assert len(plan.days) >= 10 and sum(map(len, truth.values())) > 20
        assert stored == {k: dict(v) for k, v in truth.items()}, actor.username
