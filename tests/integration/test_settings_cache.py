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
