"""The compact hourly histograms (one row per hour × type, hour × shop, hour × shop × type) hold exactly what the raw
conversations say; folding never changes a figure; migration 0010 folds a database that already holds history."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select

from core.auth import system_actor
from core.db import read_session
from core.migrate import (
    alembic_config, alembic_config_for_scripts, current_revision, head_revision, upgrade_to_head,
)
from core.models import (
    AgentResponseBucket, AgentResponseDailyByShop, AgentResponseDailyByShopType, AgentResponseDailyByType, Conversation,
    utcnow,
)
from core.queries import metrics
from core.rollups import bucket_of, floor_hour, insert_fine_buckets
from core.rollups_compact import FOLDS, decode, fold_closed_hours
from core.rollups_daily import floor_day
from core.uow import UnitOfWork
from tests.support.data import ROLE_ACTORS, seed_minimal

ACTOR = system_actor("test")
# The revision migration 0010 upgrades from (the integrator re-chains it at each merge).
BEFORE_0010 = ScriptDirectory.from_config(alembic_config_for_scripts()).get_revision("0010").down_revision


def raw_histograms(engine: Engine, keys: tuple[str, ...], before) -> dict:
    """Per (hour, *keys): bucket → count of completed conversations created before BEFORE, counted in Python."""
    out: dict = defaultdict(Counter)
    with read_session(engine) as s:
        rows = s.execute(select(Conversation).where(Conversation.status == "completed",
                                                    Conversation.response_time_ms.is_not(None),
                                                    Conversation.created_at < before)).scalars()
        for c in rows:
            out[(floor_hour(c.created_at), *(getattr(c, k) for k in keys))][bucket_of(c.response_time_ms)] += 1
    return {k: dict(v) for k, v in out.items()}


def stored_histograms(engine: Engine, model, keys: tuple[str, ...]) -> dict:
    with read_session(engine) as s:
        return {(r.hour, *(getattr(r, k) for k in keys)): decode(r.counts) for r in s.scalars(select(model))}


def fine_hours(engine: Engine) -> set:
    with read_session(engine) as s:
        return set(s.scalars(select(AgentResponseBucket.hour).distinct()))


def folded_until(engine: Engine, started: datetime) -> datetime:
    """The first hour still kept as fine rows, checking that every closed hour before STARTED was folded."""
    fine = fine_hours(engine)
    assert all(h >= floor_hour(started) for h in fine), "closed hours are folded; only the current one stays fine"
    return min(fine, default=floor_hour(utcnow()) + timedelta(hours=1))


def test_compact_tables_equal_the_raw_rows(engine: Engine) -> None:
    started = utcnow()
    seed_minimal(engine, conversations=1500, days=3)
    current = folded_until(engine, started)
    for model, keys in FOLDS:
        truth = raw_histograms(engine, keys, before=current)
        assert len(truth) > 20
        assert stored_histograms(engine, model, keys) == truth, model.__tablename__
    today = floor_day(utcnow())
    for model, keys in ((AgentResponseDailyByType, ("agent_type",)), (AgentResponseDailyByShop, ("shop_id",)),
                        (AgentResponseDailyByShopType, ("shop_id", "agent_type"))):
        truth = defaultdict(Counter)
        for (hour, *k), hist in raw_histograms(engine, keys, before=today).items():
            truth[(floor_day(hour), *k)].update(hist)
        with read_session(engine) as s:
            stored = {(r.day, *(getattr(r, k) for k in keys)): decode(r.counts) for r in s.scalars(select(model))}
        assert len(stored) >= 3 and stored == {k: dict(v) for k, v in truth.items()}, model.__tablename__


def test_a_fold_changes_no_figure(engine: Engine) -> None:
    seed_minimal(engine, conversations=1500, days=2)
    later = utcnow() + timedelta(hours=2)  # the seed's current hour is a whole hour then, read from rollup rows
    with UnitOfWork(engine) as uow:  # every hour unfolded, as `rollups rebuild` leaves them before its fold
        for model in (AgentResponseBucket, *(fold[0] for fold in FOLDS)):
            uow.session.execute(model.__table__.delete())
        insert_fine_buckets(uow.session)
        uow.commit()

    def everything(actor) -> tuple:
        with read_session(engine) as s:
            return tuple(f(s, actor=actor, window_hours=24, now=later) for f in (
                lambda s, **kw: metrics.get_summary(s, **kw).as_dict(), metrics.get_timeseries,
                lambda s, **kw: metrics.get_breakdown(s, by="agent_type", top=20, **kw),
                lambda s, **kw: metrics.get_breakdown(s, by="shop", top=20, **kw)))

    actors = (ACTOR, ROLE_ACTORS["support"])
    before = [everything(a) for a in actors]
    assert before[0][0]["p95_response_ms"] is not None and before[1][0]["p95_response_ms"] is not None
    with UnitOfWork(engine) as uow:
        assert fold_closed_hours(uow.session, before=later) > 0
        uow.commit()
    assert fine_hours(engine) == set()
    assert [everything(a) for a in actors] == before


def test_migration_0010_folds_a_database_with_history(engine: Engine) -> None:
    seed_minimal(engine, conversations=1500, days=3)
    current = floor_hour(utcnow())
    cfg = alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, BEFORE_0010)
        with UnitOfWork(engine) as uow:  # the fine rows as a database before 0010 holds them
            uow.session.execute(AgentResponseBucket.__table__.delete())
            insert_fine_buckets(uow.session)
            uow.commit()
        with read_session(engine) as s:
            assert s.scalar(select(func.count()).select_from(AgentResponseBucket)) > 100
    finally:
        upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()
    until = folded_until(engine, current)
    for model, keys in FOLDS:
        assert stored_histograms(engine, model, keys) == raw_histograms(engine, keys, before=until), model.__tablename__


def test_a_second_fold_adds_to_the_compact_rows_already_there(engine: Engine) -> None:
    """Late completions folded into hours already folded: the database merges the two histograms bucket by bucket."""
    seed_minimal(engine, conversations=1500, days=2)
    later = utcnow() + timedelta(hours=2)
    with UnitOfWork(engine) as uow:
        for model in (AgentResponseBucket, *(fold[0] for fold in FOLDS)):
            uow.session.execute(model.__table__.delete())
        insert_fine_buckets(uow.session)
        fine = [dict(r._mapping) for r in uow.session.execute(select(AgentResponseBucket.__table__))]
        uow.session.execute(AgentResponseBucket.__table__.delete())
        uow.commit()
    assert sum(r["count"] >= 2 for r in fine) > 5, "some rows split in two, so the second fold meets the first"
    halves = ([{**r, "count": r["count"] // 2} for r in fine if r["count"] // 2],
              [{**r, "count": r["count"] - r["count"] // 2} for r in fine])
    folded = []
    for half in halves:
        with UnitOfWork(engine) as uow:
            uow.session.execute(AgentResponseBucket.__table__.insert(), half)
            folded.append(fold_closed_hours(uow.session, before=later))
            uow.commit()
    assert folded == [len(halves[0]), len(halves[1])]
    assert fine_hours(engine) == set()
    for model, keys in FOLDS:
        assert stored_histograms(engine, model, keys) == raw_histograms(engine, keys, before=later), model.__tablename__


def _histogram_column_types(engine: Engine) -> set[str]:
    tables = [m.__tablename__ for m, _ in FOLDS] + [AgentResponseDailyByType.__tablename__,
                                                    AgentResponseDailyByShop.__tablename__,
                                                    AgentResponseDailyByShopType.__tablename__]
    found = inspect(engine)
    return {type(c["type"]).__name__ for t in tables for c in found.get_columns(t) if c["name"] == "counts"}


def test_migration_0013_keeps_every_histogram_and_its_figures(engine: Engine) -> None:
    """jsonb → json on PostgreSQL (the text readers sum is kept as written); the same histograms and health
    figures on either side of the migration, both ways."""
    seed_minimal(engine, conversations=900, days=3)

    def state() -> tuple:
        with read_session(engine) as s:
            figures = [metrics.get_breakdown(s, actor=a, window_hours=72, by=by, top=20)
                       for a in (ACTOR, ROLE_ACTORS["support"]) for by in ("agent_type", "shop")]
        return [stored_histograms(engine, m, k) for m, k in FOLDS], figures

    at_head = state()
    assert _histogram_column_types(engine) == {"JSON"}
    cfg = alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0012")
        assert _histogram_column_types(engine) == {"JSONB" if engine.dialect.name == "postgresql" else "JSON"}
        assert state() == at_head
    finally:
        upgrade_to_head(engine)
    assert current_revision(engine) == head_revision() and _histogram_column_types(engine) == {"JSON"}
    assert state() == at_head and sum(len(h) for h in at_head[0]) > 50
