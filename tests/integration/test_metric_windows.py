"""Windows are the last 60 minutes / 24 hours / 7 days / 30 days to the minute: whole hours (and days) from the
rollups, the partial hours at each end from raw rows. Every figure must equal what raw rows say, on both databases."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, event, func, select, update

from core import rollups
from core.auth import system_actor
from core.db import read_session
from core.models import (
    AgentMetric, AgentMetricDaily, AgentMetricDailyByShop, AgentMetricDailyByType, AgentResponseDailyByShop,
    AgentResponseDailyByType, Conversation, utcnow,
)
from core.queries import metrics
from core.queries import rollup_reads
from core.queries.rollup_reads import plan_window
from core.rollups import BUCKET_RATIO, bucket_of
from core.rollups_daily import floor_day, refresh_daily
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
    """A window starting 8 minutes into its hour reads that hour whole, less its first 8 minutes; one starting 38
    minutes in reads the 22 minutes after its start: 30 minutes of raw rows at most, never the 52 or 59."""
    now = datetime(2026, 11, 25, 11, 8, 30, tzinfo=timezone.utc)
    hour = timedelta(hours=1)
    with read_session(engine) as s:
        last_hour = plan_window(s, actor=ACTOR, since=metrics.window_bounds(1, now)[0], now=now)
        last_day = plan_window(s, actor=ACTOR, since=metrics.window_bounds(24, now)[0], now=now)
        half_past = now + timedelta(minutes=30)
        later = plan_window(s, actor=ACTOR, since=metrics.window_bounds(24, half_past)[0], now=half_past)
    ten, eight_past_ten = (datetime(2026, 11, 25, 10, m, tzinfo=timezone.utc) for m in (0, 8))
    eleven = ten + hour
    # The current hour is read from its hourly rows (it holds everything created so far), not from raw rows.
    assert (last_hour.raw, last_hour.less, last_hour.hourly) == ([], [(ten, eight_past_ten)], [(ten, None)])
    yesterday_eleven = eleven - 24 * hour
    assert (last_day.raw, last_day.less) == ([], [(yesterday_eleven, yesterday_eleven + timedelta(minutes=8))])
    assert last_day.hourly == [(yesterday_eleven, None)]
    assert (later.raw, later.less) == ([(yesterday_eleven + timedelta(minutes=38), yesterday_eleven + hour)], [])
    assert later.hourly == [(yesterday_eleven + hour, None)]
    assert metrics.describe_window(*metrics.window_bounds(1, now)) == "10:08–11:08 UTC"


def _at_minute(minute: int) -> datetime:
    """The next time at MINUTE past the hour (ahead of the clock by under an hour: nothing is created meanwhile)."""
    now = utcnow()
    return now + timedelta(minutes=(minute - now.minute) % 60)


@pytest.mark.parametrize("minute", [3, 20, 40, 57])
def test_a_window_read_whole_less_its_first_minutes_is_true_to_raw_rows(engine: Engine, minute: int) -> None:
    """Windows starting 3 or 20 minutes into their hour read it whole less those minutes; 40 and 57 read the
    minutes after the start. Every figure equals the conversations' own, and a shop whose conversations of that
    hour all came before the start is not in the window: no row of zeros, no emptied histogram."""
    seed_minimal(engine, conversations=2000, days=2)
    now = _at_minute(minute)
    since = metrics.window_bounds(24, now)[0]
    hour_start = since.replace(minute=0)
    table = Conversation.__table__
    with UnitOfWork(engine) as uow:  # shop 2 keeps only conversations created before the window, one completed
        uow.session.execute(update(Conversation).where(Conversation.shop_id == 2, Conversation.created_at >= since)
                            .values(shop_id=1))
        model = uow.session.execute(select(table).where(table.c.status == "completed").limit(1)).mappings().one()
        early = hour_start + (since - hour_start) / 2
        uow.session.execute(table.insert().values(
            {**{k: v for k, v in model.items() if k != "id"}, "shop_id": 2, "created_at": early}))
        rollups.rebuild(uow.session)
        uow.commit()
    with read_session(engine) as s:
        before_start = s.scalar(select(func.count()).where(
            Conversation.shop_id == 2, Conversation.created_at >= hour_start, Conversation.created_at < since))
        plan = plan_window(s, actor=ACTOR, since=since, now=now)
    assert (plan.less != []) == (minute < 30)
    assert before_start > 0, "shop 2 has conversations in the first minutes of the window's first hour"
    assert_true_to_raw_rows(engine, 24, now=now)
    assert_true_to_raw_rows(engine, 24 * 7, now=now)
    assert_true_to_raw_rows(engine, 24, actor=ROLE_ACTORS["shop_owner"], shops={1}, now=now)
    by_shop = figures(engine, 24, now=now)[3]
    assert [r["created"] for r in by_shop] == [raw(engine, since, {1})["conversations"]]
    with read_session(engine) as s:
        assert rollup_reads.histograms(s, actor=ACTOR, plan=plan, by="shop_id").keys() == {1}


def test_every_window_counts_only_its_queue_row_by_row(engine: Engine) -> None:
    """A summary reads the pending and in-progress conversations themselves and takes the ones waiting for a
    response from the rollups (created less finished), whole days included (their daily rows plus the fine rows not
    folded yet). Both windows agree with the conversations."""
    seed_minimal(engine, conversations=2000, days=5)
    asked: dict[int, list] = {}
    for hours in (24, 720):
        seen = asked.setdefault(hours, [])
        listen = lambda conn, cursor, statement, params, *a, seen=seen: seen.append(str(params))  # noqa: E731
        event.listen(engine, "before_cursor_execute", listen)
        try:
            assert_true_to_raw_rows(engine, hours)
        finally:
            event.remove(engine, "before_cursor_execute", listen)
    for hours in (24, 720):
        queue = [p for p in asked[hours] if "pending" in p]
        assert len(queue) == 1 and "waiting_response" not in queue[0], hours
    with read_session(engine) as s:
        waiting = s.scalar(select(func.count()).where(Conversation.status == "waiting_response",
                                                      Conversation.created_at >= utcnow() - timedelta(days=5)))
        plan = plan_window(s, actor=ACTOR, since=metrics.window_bounds(720)[0])
    assert waiting > 0, "the seed leaves conversations waiting for a response"
    assert floor_day(utcnow()) - timedelta(days=1) in plan.days, "yesterday is read from its daily rows"


@pytest.mark.parametrize("days_ago", [3, 6])
def test_a_late_finish_in_a_whole_day_shows_at_once_and_after_the_probe(engine: Engine, days_ago: int) -> None:
    """A conversation of a few days ago, waiting for a response, finishes after its day's daily rows were written.
    Every 7- and 30-day figure shows it at once (the daily rows plus the fine rows not folded yet), and still does
    after the probe folds it, including for a day older than the last three the probe refreshes anyway: such a day's
    fold used to leave its daily rows as they were, and the finish was lost from them until a rebuild."""
    seed_minimal(engine, conversations=2000, days=8)
    day = floor_day(utcnow()) - timedelta(days=days_ago)
    with UnitOfWork(engine) as uow:
        conv_id = uow.session.scalar(select(Conversation.id).where(
            Conversation.created_at >= day + timedelta(hours=10), Conversation.created_at < day + timedelta(days=1),
            Conversation.status == "completed").order_by(Conversation.id).limit(1))
        uow.session.execute(update(Conversation).where(Conversation.id == conv_id).values(
            status="waiting_response", response_time_ms=None, prompt_tokens=0, completion_tokens=0, cost_usd=0,
            completed_at=None))
        rollups.rebuild(uow.session)
        uow.commit()
    with read_session(engine) as s:
        assert day in plan_window(s, actor=ACTOR, since=metrics.window_bounds(720)[0]).days, "read from daily rows"
    before = figures(engine, 720)[0]
    _finish(engine, conv_id)  # the worker's way: the fine rows of its created hour, at once
    after = figures(engine, 720)[0]
    assert after["by_status"]["waiting_response"] == before["by_status"]["waiting_response"] - 1
    assert after["by_status"]["completed"] == before["by_status"]["completed"] + 1
    for hours in (168, 720):
        assert_true_to_raw_rows(engine, hours)
    with UnitOfWork(engine) as uow:  # the probe's cycle: the fine rows are folded away, the daily rows follow
        refresh_daily(uow.session, stale_only=True)
        uow.commit()
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AgentMetric).where(AgentMetric.hour < floor_day(utcnow()))
                        ) == 0, "folded"
    for hours in (168, 720):
        assert_true_to_raw_rows(engine, hours)


def _finish(engine: Engine, conv_id: int) -> None:
    """What the worker does when a conversation completes: its status and its created hour's fine rollup, at once."""
    fields = (Conversation.id, Conversation.created_at, Conversation.agent_instance_id, Conversation.shop_id,
              Conversation.agent_type, Conversation.status, Conversation.response_time_ms,
              Conversation.prompt_tokens, Conversation.completion_tokens, Conversation.cost_usd)
    with engine.begin() as conn:
        row = conn.execute(update(Conversation).where(Conversation.id == conv_id).values(
            status="completed", response_time_ms=1234, prompt_tokens=100, completion_tokens=50, cost_usd=0.25,
            completed_at=utcnow()).returning(*fields)).one()
        rollups.record_finished(conn, row)


@pytest.mark.parametrize("minute", [10, 50])
def test_a_conversation_finishing_during_the_read_is_counted_once(engine: Engine, minute: int) -> None:
    """A conversation created just before the window and one inside it complete between two statements of the read:
    the figures are those of one moment, none counted twice nor taken away (reported by a review of a read of the
    whole first hour less the minutes before the window: PostgreSQL gave completed 939 against 940 raw)."""
    seed_minimal(engine, conversations=3000, days=3)
    now = utcnow()
    now += timedelta(minutes=(minute - now.minute) % 60)
    since = metrics.window_bounds(24, now)[0]
    hour_start = since.replace(minute=0)
    ids = []
    with UnitOfWork(engine) as uow:
        for a, b in ((hour_start, since), (since, hour_start + timedelta(hours=1))):
            conv_id = uow.session.scalar(select(Conversation.id).where(
                Conversation.created_at >= a, Conversation.created_at < b).order_by(Conversation.id).limit(1))
            assert conv_id is not None
            ids.append(conv_id)
        uow.session.execute(update(Conversation).where(Conversation.id.in_(ids)).values(
            status="pending", response_time_ms=None, prompt_tokens=0, completion_tokens=0, cost_usd=0,
            completed_at=None))
        rollups.rebuild(uow.session)
        uow.commit()
    statements = []

    def finish_midway(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if not statement.lstrip().upper().startswith(("SELECT", "WITH")):  # not SQLite's BEGIN, not the writes below
            return
        statements.append(statement)
        if len(statements) == 2:
            for conv_id in ids:
                _finish(engine, conv_id)
    before = raw(engine, since)
    event.listen(engine, "before_cursor_execute", finish_midway)
    try:
        with read_session(engine) as s:
            summary = metrics.get_summary(s, actor=ACTOR, window_hours=24, now=now).as_dict()
    finally:
        event.remove(engine, "before_cursor_execute", finish_midway)
    after = raw(engine, since)
    assert len(statements) > 3 and after["by_status"]["completed"] == before["by_status"]["completed"] + 1
    assert summary["by_status"] == before["by_status"]  # the moment the read began, on both databases
    assert summary["conversations"] == before["conversations"] == after["conversations"]


@pytest.mark.parametrize("minute", [10, 50])
@pytest.mark.parametrize("hours", [24, 720])  # a 1-hour window ahead of the clock may hold no data
def test_figures_are_exact_whichever_side_of_the_half_hour_the_window_starts(engine: Engine, hours: int,
                                                                            minute: int) -> None:
    """Minute 10: 50 raw minutes at the start; minute 50: 10 (sums and histograms from one scan)."""
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
