"""Long windows read whole days from the daily rollups: the figures must equal the hourly-only path and raw rows."""
from __future__ import annotations

import math

from sqlalchemy import Engine, delete, func, select

from core.auth import system_actor
from core.db import read_session
from core.models import AgentMetricDaily, AgentResponseDailyByShop, AgentResponseDailyByType, Conversation, utcnow
from core.queries import metrics
from core.queries.rollup_reads import plan_window
from core.rollups import window_start
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal

ACTOR = system_actor("test")


def figures(engine: Engine, actor=ACTOR) -> tuple:  # noqa: ANN001
    with read_session(engine) as s:
        summary = metrics.get_summary(s, actor=actor, window_hours=720)
        series = metrics.get_timeseries(s, actor=actor, window_hours=720)
        by_type = metrics.get_breakdown(s, actor=actor, window_hours=720, by="agent_type", top=20)
        by_shop = metrics.get_breakdown(s, actor=actor, window_hours=720, by="shop", top=20)
    return summary.as_dict(), series, by_type, by_shop


def test_daily_and_hourly_paths_agree_with_raw_rows(engine: Engine) -> None:
    seed_minimal(engine, conversations=400, days=12)
    with read_session(engine) as s:
        plan = plan_window(s, actor=ACTOR, since=window_start(utcnow(), 720))
        raw_total = s.scalar(select(func.count()).select_from(Conversation))
        times = sorted(s.scalars(select(Conversation.response_time_ms).where(Conversation.status == "completed")))
    assert len(plan.days) >= 10, "whole days come from the daily rollups"
    with_daily = figures(engine)
    with UnitOfWork(engine) as uow:
        for model in (AgentMetricDaily, AgentResponseDailyByType, AgentResponseDailyByShop):
            uow.session.execute(delete(model))
        uow.commit()
    hourly_only = figures(engine)
    assert with_daily == hourly_only
    summary = with_daily[0]
    assert summary["conversations"] == raw_total == 400
    exact = times[math.ceil(0.95 * len(times)) - 1]
    assert abs(summary["p95_response_ms"] - exact) / exact < 0.025
    assert sum(row["created"] for row in with_daily[1]) == 400
    assert sum(row["created"] for row in with_daily[2]) == sum(row["created"] for row in with_daily[3]) == 400


def test_scoped_users_read_only_their_shops_over_long_windows(engine: Engine) -> None:
    seed_minimal(engine, conversations=200, days=10)
    with read_session(engine) as s:
        own = s.scalar(select(func.count()).select_from(Conversation).where(Conversation.shop_id == 1))
    summary = figures(engine, ROLE_ACTORS["shop_owner"])[0]
    assert summary["conversations"] == own < 200
