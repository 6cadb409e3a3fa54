"""The worker's view of the settings: polled every TTL, re-read only every RECHECK while changes are pushed."""
from __future__ import annotations

from sqlalchemy import Engine, text

from core.auth import system_actor
from core.services import controls
from core.uow import UnitOfWork
from core.worker.settings_cache import SettingsCache
from tests.support.data import seed_minimal

ADMIN = system_actor("test")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _switch_off(engine: Engine) -> int:
    return controls.engage_kill_switch(actor=ADMIN, reason="t", uow=UnitOfWork(engine)).version


def test_polled_the_change_is_seen_after_the_ttl(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ADMIN, mode="full", reason="t", uow=UnitOfWork(engine))
    clock = Clock()
    cache = SettingsCache(engine, ttl_seconds=0.5, recheck_seconds=3600, clock=clock)
    assert cache.get().running
    off = _switch_off(engine)
    clock.now += 0.4
    assert cache.get().running  # inside the TTL: the cached state
    clock.now += 0.2
    assert cache.get().version == off and not cache.get().running


def test_pushed_only_a_refresh_or_the_recheck_reads_again(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ADMIN, mode="full", reason="t", uow=UnitOfWork(engine))
    clock = Clock()
    cache = SettingsCache(engine, ttl_seconds=0.5, recheck_seconds=30, clock=clock)
    cache.set_pushed(True)
    assert cache.get().running
    off = _switch_off(engine)
    clock.now += 10
    assert cache.get().running  # pushed: no polling; the NOTIFY's refresh is what reads
    assert cache.refresh().version == off
    controls.set_activation(actor=ADMIN, mode="full", reason="t", uow=UnitOfWork(engine))
    clock.now += 31
    assert cache.get().running  # the recheck, should a NOTIFY ever be missed
    cache.set_pushed(False)
    _switch_off(engine)
    clock.now += 0.6
    assert not cache.get().running  # the listener gone: polling every TTL again


def test_pushed_but_unreadable_is_polled_for_and_claims_nothing_meanwhile(engine: Engine) -> None:
    seed_minimal(engine, conversations=0)
    controls.set_activation(actor=ADMIN, mode="full", reason="t", uow=UnitOfWork(engine))
    clock = Clock()
    cache = SettingsCache(engine, ttl_seconds=0.5, recheck_seconds=3600, clock=clock)
    cache.set_pushed(True)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE agent_settings RENAME TO agent_settings_away"))
    try:
        assert cache.refresh() is None and cache.scope().shops == frozenset()  # fails closed
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE agent_settings_away RENAME TO agent_settings"))
    clock.now += 0.6
    assert cache.get().running  # read again after the TTL, not the hour-long recheck


def test_unreadable_settings_are_said_once_then_once_a_minute(engine: Engine, caplog) -> None:  # noqa: ANN001
    """The crash review: with the tables gone, the worker wrote "cannot read the agent settings" every 0.6 s."""
    import logging

    seed_minimal(engine, conversations=0)
    clock = Clock()
    cache = SettingsCache(engine, ttl_seconds=0.5, clock=clock)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE agent_settings RENAME TO agent_settings_away"))
    with caplog.at_level(logging.WARNING, logger="core.worker.settings_cache"):
        for _ in range(241):  # two minutes of polls, every 0.5 s
            assert cache.get() is None
            clock.now += 0.5
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE agent_settings_away RENAME TO agent_settings"))
        assert cache.get() is not None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 4, said  # the outage, a reminder at 60 s and at 120 s, the recovery
    assert said[0].startswith("cannot read the agent settings") and "still cannot" in said[1]
    assert said[-1].startswith("the agent settings can be read again after 12") and "still cannot" in said[2]


def test_the_alert_sender_says_a_lasting_database_problem_once(tmp_path, caplog) -> None:  # noqa: ANN001
    """The crash review: with the tables missing, the alert sender logged the raw error, SQL included, every 15 s."""
    import logging
    import time

    from sqlalchemy import create_engine

    from core.alerts.runner import Sender
    from core.config import get_settings

    empty = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    sender = Sender(empty, "test", get_settings().model_copy(update={"alert_eval_seconds": 0.01}))
    with caplog.at_level(logging.WARNING, logger="core.alerts.runner"):
        sender.start()
        time.sleep(0.5)  # dozens of rounds
        sender.stopping.set()
        sender.join(timeout=5)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "SELECT" not in said[0] and said[0].endswith("the notifications stay queued"), said
