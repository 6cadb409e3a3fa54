"""The sums of closed hours, folded without the instance dimension (per hour × type, × shop, × shop and type), hold
exactly what the raw conversations say; a fold never changes a figure; migration 0012 folds a populated database."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, func, select

from core.auth import system_actor
from core.db import read_session
from core.migrate import alembic_config, alembic_config_for_scripts, current_revision, head_revision, upgrade_to_head
from core.models import (
    AgentMetric, AgentMetricDailyByShop, AgentMetricDailyByType, AgentResponseBucket, Conversation, utcnow,
)
from core.queries import metrics
from core.rollups import TERMINAL_COLUMNS, floor_hour, insert_metrics
from core.rollups_compact import fold_closed_hours
from core.rollups_daily import floor_day
from core.rollups_sums import SUM_FOLDS, SUMS, fold_closed_sums
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal, unfold_recent_hours

ACTOR = system_actor("test")
BEFORE_0012 = ScriptDirectory.from_config(alembic_config_for_scripts()).get_revision("0012").down_revision


def _figures(c: Conversation) -> dict[str, object]:
    """One conversation's contribution to the sums, counted in Python."""
    done = c.status in TERMINAL_COLUMNS
    return {"created": 1, "completed": int(c.status == "completed"), "failed": int(c.status == "failed"),
            "opted_out": int(c.status == "opted_out"),
            "response_ms_sum": (c.response_time_ms or 0) if c.status == "completed" else 0,
            "prompt_tokens": (c.prompt_tokens or 0) if done else 0,
            "completion_tokens": (c.completion_tokens or 0) if done else 0,
            "cost_usd": Decimal(str(c.cost_usd or 0)) if done else Decimal(0)}


def raw_sums(engine: Engine, keys: tuple[str, ...], before: datetime) -> dict:
    """Per (hour, *keys): the sums of the conversations created before BEFORE, in Python."""
    out: dict = defaultdict(Counter)
    with read_session(engine) as s:
        for c in s.scalars(select(Conversation).where(Conversation.created_at < before)):
            out[(floor_hour(c.created_at), *(getattr(c, k) for k in keys))].update(_figures(c))
    return {k: {c: v[c] for c in SUMS} for k, v in out.items()}


def stored_sums(engine: Engine, model, keys: tuple[str, ...]) -> dict:
    with read_session(engine) as s:
        return {(r.hour, *(getattr(r, k) for k in keys)): {c: getattr(r, c) for c in SUMS}
                for r in s.scalars(select(model))}


def assert_compact_equals_raw(engine: Engine, before: datetime) -> None:
    for model, keys in SUM_FOLDS:
        truth = raw_sums(engine, keys, before)
        assert len(truth) > 20
        stored = stored_sums(engine, model, keys)
        assert stored.keys() == truth.keys(), model.__tablename__
        for key, sums in truth.items():
            assert {c: Decimal(str(v)) for c, v in stored[key].items()} == sums, (model.__tablename__, key)


def fine_hours(engine: Engine) -> set:
    with read_session(engine) as s:
        return set(s.scalars(select(AgentMetric.hour).distinct()))


def test_compact_sums_equal_the_raw_rows(engine: Engine) -> None:
    started = utcnow()
    seed_minimal(engine, conversations=1500, days=3)
    assert all(h >= floor_hour(started) for h in fine_hours(engine)), "only the current hour stays in agent_metrics"
    assert_compact_equals_raw(engine, before=floor_hour(started))
    today = floor_day(utcnow())
    for model, key in ((AgentMetricDailyByType, "agent_type"), (AgentMetricDailyByShop, "shop_id")):
        truth: dict = defaultdict(Counter)
        for (hour, k), sums in raw_sums(engine, (key,), before=today).items():
            truth[(floor_day(hour), k)].update({c: v for c, v in sums.items() if c != "response_ms_sum"})
        with read_session(engine) as s:
            stored = {(r.day, getattr(r, key)): {c: Decimal(str(getattr(r, c))) for c in SUMS if c != "response_ms_sum"}
                      for r in s.scalars(select(model))}
        assert len(stored) >= 3 and stored == {k: dict(v) for k, v in truth.items()}, model.__tablename__


def test_a_fold_changes_no_figure_and_adds_to_rows_already_there(engine: Engine) -> None:
    seed_minimal(engine, conversations=1500, days=2)
    later = utcnow() + timedelta(hours=2)  # the seed's current hour is a whole hour then, read from rollup rows
    with UnitOfWork(engine) as uow:  # every hour unfolded, as agent_metrics held them before 0012
        for model in (AgentMetric, *(fold[0] for fold in SUM_FOLDS)):
            uow.session.execute(model.__table__.delete())
        insert_metrics(uow.session)
        fine = [dict(r._mapping) for r in uow.session.execute(select(AgentMetric.__table__))]
        uow.commit()

    def everything(actor) -> tuple:
        with read_session(engine) as s:
            return tuple(f(s, actor=actor, window_hours=24, now=later) for f in (
                lambda s, **kw: metrics.get_summary(s, **kw).as_dict(), metrics.get_timeseries,
                lambda s, **kw: metrics.get_breakdown(s, by="agent_type", top=20, **kw),
                lambda s, **kw: metrics.get_breakdown(s, by="shop", top=20, **kw)))

    actors = (ACTOR, ROLE_ACTORS["support"])
    before = [everything(a) for a in actors]
    assert before[0][0]["conversations"] > 500 and before[1][0]["conversations"] > 100
    # Half of each row folded, the other half left as fine rows of closed hours (late completions): readers add
    # both; then the second half folds into the same compact rows.
    with UnitOfWork(engine) as uow:
        uow.session.execute(AgentMetric.__table__.delete())
        uow.session.execute(AgentMetric.__table__.insert(), [{**r, **{c: r[c] // 2 for c in SUMS if c != "cost_usd"}}
                                                               for r in fine])
        assert fold_closed_sums(uow.session, before=later) == len(fine)
        uow.session.execute(AgentMetric.__table__.insert(), [
            {**r, **{c: r[c] - r[c] // 2 for c in SUMS if c != "cost_usd"}, "cost_usd": 0} for r in fine])
        uow.commit()
    assert [everything(a) for a in actors] == before
    with UnitOfWork(engine) as uow:
        assert fold_closed_sums(uow.session, before=later) == len(fine)
        uow.commit()
    assert fine_hours(engine) == set()
    assert [everything(a) for a in actors] == before
    assert_compact_equals_raw(engine, before=later)


@pytest.mark.parametrize("window, fold_before", [("summary 24h", 2), ("by shop 30d", 3)])
def test_a_fold_during_a_health_read_changes_no_figure(engine: Engine, window: str, fold_before: int) -> None:
    """The probe folds while the console reads: rows leave the fine tables for the compact ones between two
    statements of the read. Each statement seeing its own snapshot, the sums counted those rows twice and the
    histograms not at all."""
    seed_minimal(engine, conversations=1500, days=3)
    later = utcnow() + timedelta(hours=2)  # every seeded hour is a closed one then, and the fold moves them all
    unfold_recent_hours(engine)

    def read() -> object:
        with read_session(engine) as s:
            if window == "summary 24h":
                return metrics.get_summary(s, actor=ACTOR, window_hours=24, now=later).as_dict()
            return metrics.get_breakdown(s, actor=ACTOR, window_hours=720, by="shop", top=50, now=later)
    expected = read()
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AgentMetric)) > 0, "fine rows for the fold to move"
        assert s.scalar(select(func.count()).select_from(AgentResponseBucket)) > 0
    statements = []

    def fold_midway(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if not statement.lstrip().upper().startswith(("SELECT", "WITH")):  # not SQLite's BEGIN, not the writes below
            return
        statements.append(statement)
        if len(statements) == fold_before:  # just after the fine sums were read
            with engine.begin() as probe:
                fold_closed_hours(probe, before=later)
                fold_closed_sums(probe, before=floor_hour(later))
    event.listen(engine, "before_cursor_execute", fold_midway)
    try:
        during = read()
    finally:
        event.remove(engine, "before_cursor_execute", fold_midway)
    assert len(statements) > 4 and fine_hours(engine) == set()
    assert during == expected


def test_a_read_in_the_callers_own_snapshot_stays_in_it(pg_engine: Engine) -> None:
    """A session already REPEATABLE READ is a snapshot: its figures are read in it (no second connection, which would
    see a later snapshot than the caller's other reads), and a fold committed meanwhile changes none of them."""
    from core.db import snapshot_session

    seed_minimal(pg_engine, conversations=600, days=2)
    later = utcnow() + timedelta(hours=2)
    unfold_recent_hours(pg_engine)
    with read_session(pg_engine) as plain, snapshot_session(plain) as inner:
        assert inner is not plain
    with read_session(pg_engine) as s:
        s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        first = metrics.get_summary(s, actor=ACTOR, window_hours=24, now=later).as_dict()
        with snapshot_session(s) as inner:
            assert inner is s
        with pg_engine.begin() as probe:
            fold_closed_hours(probe, before=later)
            fold_closed_sums(probe, before=floor_hour(later))
        assert metrics.get_summary(s, actor=ACTOR, window_hours=24, now=later).as_dict() == first
    assert fine_hours(pg_engine) == set()


def test_migration_0012_folds_a_database_with_history(engine: Engine) -> None:
    seed_minimal(engine, conversations=1500, days=3)
    current = floor_hour(utcnow())
    cfg = alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, BEFORE_0012)
        # The downgrade gave agent_metrics back every hour, per instance, from the raw rows.
        with read_session(engine) as s:
            per_instance = {(r.hour, r.agent_instance_id): r.created for r in s.scalars(select(AgentMetric))}
            truth = Counter((floor_hour(c.created_at), c.agent_instance_id) for c in s.scalars(select(Conversation)))
        assert per_instance == dict(truth) and len(truth) > 100
    finally:
        upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    assert all(h >= current for h in fine_hours(engine))
    assert_compact_equals_raw(engine, before=min(fine_hours(engine), default=current + timedelta(hours=1)))


def test_the_probe_refreshes_only_the_days_a_late_completion_changed(engine: Engine,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from core.rollups import record_finished
    from core.rollups_daily import refresh_daily

    started = utcnow()  # the refreshes below fold and refresh as of then, whatever hour the clock turns meanwhile
    today = floor_day(started)
    # Conversations still await a reply for a day. Seeded as of now, those of an earlier day are the few created in
    # the last (24 - hour) hours: none at all late in the UTC evening. Seeding as of just before midnight leaves a
    # whole day of them, whatever the hour the suite runs.
    monkeypatch.setattr("core.seed.runner.utcnow", lambda: today - timedelta(minutes=1))
    seed_minimal(engine, conversations=1500, days=3)
    with UnitOfWork(engine) as uow:
        assert refresh_daily(uow.session, stale_only=True, now=started) == 0, "nothing changed: no day is rewritten"
        conv = uow.session.scalars(select(Conversation).where(
            Conversation.status == "waiting_response", Conversation.created_at < today,
            Conversation.created_at >= today - timedelta(days=2)).limit(1)).one()
        # What the worker does when a conversation of an earlier day completes: its rollup rows are fine rows
        # of an hour already folded.
        conv.status, conv.response_time_ms, conv.prompt_tokens, conv.completion_tokens = "completed", 4321, 70, 30
        record_finished(uow.session, conv)
        assert refresh_daily(uow.session, stale_only=True, now=started) > 0
        uow.commit()
    with read_session(engine) as s:
        day = floor_day(conv.created_at)
        row = s.scalars(select(AgentMetricDailyByType).where(AgentMetricDailyByType.day == day,
                                                             AgentMetricDailyByType.agent_type == conv.agent_type)).one()
    truth = {k: v for k, v in raw_sums(engine, ("agent_type",), before=today).items()
             if floor_day(k[0]) == day and k[1] == conv.agent_type}
    assert row.completed == sum(v["completed"] for v in truth.values())
    assert row.prompt_tokens == sum(v["prompt_tokens"] for v in truth.values())
    assert_compact_equals_raw(engine, before=floor_hour(utcnow()))


def _health(engine: Engine, actor, now: datetime) -> tuple:  # noqa: ANN001
    """Every 24-hour figure the page shows, for ACTOR, in the window ending NOW."""
    with read_session(engine) as s:
        return (metrics.get_summary(s, actor=actor, window_hours=24, now=now).as_dict(),
                metrics.get_timeseries(s, actor=actor, window_hours=24, now=now),
                metrics.get_breakdown(s, actor=actor, window_hours=24, by="agent_type", top=20, now=now),
                metrics.get_breakdown(s, actor=actor, window_hours=24, by="shop", top=20, now=now))


def _fine_rows_now(engine: Engine) -> int:
    with read_session(engine) as s:
        return sum(s.scalar(select(func.count()).select_from(m).where(m.hour >= floor_hour(utcnow())))
                   for m in (AgentMetric, AgentResponseBucket))


def test_the_probe_folds_the_current_hour_too_and_no_figure_moves(engine: Engine) -> None:
    """A read of the current hour read every instance's fine rows of the hour so far (they follow the traffic); the
    probe now folds them each cycle, and later completions add fine rows that readers add to the folded ones."""
    from core.probes import run_once
    from core.rollups import record_finished
    from core.services.conversations import enqueue_conversations

    seed_minimal(engine, conversations=1500, days=2)
    new = enqueue_conversations(actor=ACTOR, count=40, uow=UnitOfWork(engine))  # this hour's, whatever the minute
    actors, now = (ACTOR, ROLE_ACTORS["support"]), utcnow() + timedelta(seconds=5)
    before = [_health(engine, a, now) for a in actors]
    assert _fine_rows_now(engine) >= 10
    run_once(engine, [])
    assert _fine_rows_now(engine) == 0
    assert [_health(engine, a, now) for a in actors] == before
    with UnitOfWork(engine) as uow:  # one of them completes after the fold: a fine row again, added to the fold's
        conv = uow.session.get(Conversation, new[0])
        conv.status, conv.response_time_ms, conv.prompt_tokens, conv.completion_tokens = "completed", 2100, 60, 20
        record_finished(uow.session, conv)
        uow.commit()
    after = _health(engine, ACTOR, now)[0]
    assert after["by_status"]["completed"] == before[0][0]["by_status"]["completed"] + 1
    assert after["by_status"]["pending"] == before[0][0]["by_status"]["pending"] - 1
    assert after["prompt_tokens"] == before[0][0]["prompt_tokens"] + 60
    run_once(engine, [])
    assert _health(engine, ACTOR, now)[0] == after


def test_the_current_hours_fold_leaves_a_row_a_worker_holds_and_never_waits(pg_engine: Engine) -> None:
    """Workers add to the current hour's rows all the time: the fold takes the rows no one holds and leaves the
    others for the next cycle, so it never waits for a worker (nor can the two deadlock)."""
    from sqlalchemy import text

    from core.rollups_daily import fold_current_hour

    from core.services.conversations import enqueue_conversations

    seed_minimal(pg_engine, conversations=1500, days=1)
    enqueue_conversations(actor=ACTOR, count=40, uow=UnitOfWork(pg_engine))  # this hour's, whatever the minute
    now = utcnow() + timedelta(seconds=5)
    before = _health(pg_engine, ACTOR, now)
    total = _fine_rows_now(pg_engine)
    with pg_engine.connect() as worker:
        held = worker.execute(select(AgentMetric.hour, AgentMetric.agent_instance_id).where(
            AgentMetric.hour >= floor_hour(utcnow())).limit(1).with_for_update()).one()
        with pg_engine.begin() as probe:
            probe.execute(text("SET LOCAL lock_timeout = '1s'"))  # waiting for the worker would fail the fold
            assert fold_current_hour(probe) == total - 1
        assert _fine_rows_now(pg_engine) == 1
        worker.rollback()
    with read_session(pg_engine) as s:
        assert s.execute(select(AgentMetric.hour, AgentMetric.agent_instance_id)).one() == held
    assert _health(pg_engine, ACTOR, now) == before


def test_the_probe_vacuums_the_tables_its_folds_empty(pg_engine: Engine) -> None:
    """Rows a fold deletes keep their index entries, which every read of the hour still walks, until a VACUUM: the
    probe runs one each cycle on the two fine tables (autovacuum would come by within a minute or so)."""
    from sqlalchemy import text

    from core.probes import run_once

    def vacuums() -> dict[str, int]:
        with pg_engine.connect() as conn:
            return dict(conn.execute(text(
                "SELECT relname, vacuum_count FROM pg_stat_user_tables "
                "WHERE relname IN ('agent_metrics', 'agent_response_buckets')")).all())

    seed_minimal(pg_engine, conversations=300, days=1)
    before = vacuums()
    run_once(pg_engine, [])
    assert {t: n - before[t] for t, n in vacuums().items()} == {"agent_metrics": 1, "agent_response_buckets": 1}


def test_a_fold_of_the_current_hour_and_a_closed_hours_fold_wait_for_each_other_not_deadlock(
        pg_engine: Engine) -> None:
    """At an hour's turn the probe's current-hour fold (hour H, sums then histograms) and another fold of closed
    hours (H included: a second probe, a migration) took row locks in opposite orders: PostgreSQL found a deadlock
    and rolled one back. Every fold now takes the fold lock before touching a row."""
    import threading

    from core.rollups_compact import fold_current_histograms
    from core.rollups_daily import refresh_daily
    from core.rollups_sums import fold_current_sums
    from core.services.conversations import enqueue_conversations

    seed_minimal(pg_engine, conversations=300, days=1)
    enqueue_conversations(actor=ACTOR, count=20, uow=UnitOfWork(pg_engine))
    hour = floor_hour(utcnow())
    outcome: dict[str, str] = {}

    def closed_fold() -> None:
        try:
            with pg_engine.begin() as conn:
                refresh_daily(conn, now=hour + timedelta(hours=1, seconds=5), stale_only=True)
            outcome["closed"] = "ok"
        except Exception as exc:  # noqa: BLE001 - the deadlock is what is looked for
            outcome["closed"] = type(exc).__name__

    with pg_engine.connect() as conn, conn.begin():
        assert fold_current_sums(conn, now=hour + timedelta(minutes=59)) > 0
        other = threading.Thread(target=closed_fold)
        other.start()
        other.join(timeout=1.5)  # past PostgreSQL's deadlock_timeout (1 s): it waits for this transaction
        assert other.is_alive(), "the closed-hours fold waits for the current-hour fold to commit"
        fold_current_histograms(conn, now=hour + timedelta(minutes=59))
    other.join(timeout=30)
    assert outcome == {"closed": "ok"}
    assert _fine_rows_now(pg_engine) == 0


def test_a_probe_cycle_at_midnight_folds_and_writes_the_day_by_one_clock(engine: Engine,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle read the clock twice: its daily rows as of just past midnight, its current-hour fold as of just
    before. A completion of the day's last hour landing between the two was folded after the day's rows were
    written, and never reached them: the 7-day figures stayed one short. One clock for the cycle now."""
    from core import probes, rollups_daily
    from core.services import conversations

    from core.models import (
        AgentMetricDaily, AgentResponseDailyByShop, AgentResponseDailyByShopType, AgentResponseDailyByType,
    )

    today = floor_day(utcnow())
    seed_minimal(engine, conversations=300, days=3)
    with UnitOfWork(engine) as uow:  # yesterday as it stands before midnight: not over, no daily rows yet
        for model in (AgentMetricDaily, AgentMetricDailyByType, AgentMetricDailyByShop, AgentResponseDailyByType,
                      AgentResponseDailyByShop, AgentResponseDailyByShopType):
            uow.session.execute(model.__table__.delete().where(model.day >= today - timedelta(days=1)))
        uow.commit()
    monkeypatch.setattr(conversations, "utcnow", lambda: today - timedelta(minutes=30))
    conv_id = conversations.enqueue_conversations(actor=ACTOR, count=1, uow=UnitOfWork(engine))[0]
    def finish() -> None:  # a worker finishes it between the cycle's two transactions
        from core.rollups import record_finished

        with UnitOfWork(engine) as uow:
            conv = uow.session.get(Conversation, conv_id)
            conv.status, conv.response_time_ms, conv.prompt_tokens, conv.completion_tokens = "completed", 1500, 10, 5
            record_finished(uow.session, conv)
            uow.commit()

    class Between:  # the cycle's database, finishing the conversation before its second transaction begins
        def __init__(self, bind: Engine, began: list) -> None:
            self.bind, self.began = bind, began

        def begin(self):  # noqa: ANN202
            self.began.append(1)
            if len(self.began) == 2:
                finish()
            return self.bind.begin()

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(self.bind, name)

    began: list = []
    real_bind = probes.write_bind
    monkeypatch.setattr(probes, "write_bind", lambda e: Between(real_bind(e), began))
    monkeypatch.setattr(probes, "utcnow", lambda: today - timedelta(milliseconds=5))
    monkeypatch.setattr(rollups_daily, "utcnow", lambda: today + timedelta(milliseconds=5))
    probes.run_once(engine, [])
    monkeypatch.undo()
    with UnitOfWork(engine) as uow:  # the next cycle
        rollups_daily.refresh_daily(uow.session, stale_only=True)
        uow.commit()
    with read_session(engine) as s:
        summary = metrics.get_summary(s, actor=ACTOR, window_hours=24 * 7).as_dict()
        since = datetime.fromisoformat(summary["since"])
        completed = s.scalar(select(func.count()).where(Conversation.status == "completed",
                                                        Conversation.created_at >= since))
    assert summary["by_status"]["completed"] == completed
