"""Refused authentications, collapsed: one audit record per client address and minute, plus one with the count.

Without it, every request with a made-up token wrote an audit row, so an outsider could flood the log
(5,000 rows in 23 s). The first refusal of a window is written at once, so an attack shows up immediately;
the rest are counted and written as one record when the window has closed."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine

from core.auth import anonymous_actor
from core.errors import DatabaseUnavailable, first_line
from core.retry import is_database_error
from core.services.guard import record_refusal
from core.uow import UnitOfWork

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
MAX_ADDRESSES = 10_000


@dataclass
class _Window:
    start: int
    target: str
    reason: str
    more: int = 0


class RefusalCollapser:
    """Decides which refusals are written; counts the others per (address, window)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, max_addresses: int = MAX_ADDRESSES) -> None:
        self._clock, self.max_addresses = clock, max_addresses
        self._open: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self._reported = -60.0
        self._unwritten: list[tuple[str, _Window]] = []  # closed windows whose count the database did not take

    def _window(self) -> int:
        return int(self._clock() // WINDOW_SECONDS) * WINDOW_SECONDS

    def refuse(self, engine: Engine, *, address: str, target: str, reason: str) -> None:
        """Record one refused authentication from ADDRESS (written now if it is the window's first)."""
        self.flush(engine)
        now = self._window()
        with self._lock:
            win = self._open.get(address)
            if win is not None and win.start == now:
                win.more += 1
                return
            if len(self._open) >= self.max_addresses:  # never grow without bound: count it as one of the first
                return
            self._open[address] = _Window(now, target, reason)
        try:
            _write(engine, address, target, reason, count=1, start=now)
        except BaseException:
            with self._lock:  # unwritten: the next refusal from ADDRESS is the window's first again, not a count
                if self._open.get(address) is not None and self._open[address].start == now:
                    del self._open[address]
            raise

    def due(self) -> bool:
        """True when a closed window still has a count to write (cheap; checked on every request)."""
        now = self._window()
        return bool(self._unwritten) or any(w.start < now for w in list(self._open.values()))

    def flush(self, engine: Engine, *, everything: bool = False) -> None:
        """Write the counts of closed windows (of all windows when EVERYTHING, at shutdown). Never raises for the
        database: while it is away the counts are kept and written by a later flush (the request that flushes is
        someone else's, and a liveness check was answered 500 for it)."""
        now = self._window()
        with self._lock:  # taken out under the lock, so two requests flushing at once never write one count twice
            closed = self._unwritten + [(a, w) for a, w in self._open.items() if everything or w.start < now]
            self._unwritten = []
            for address, win in closed:
                if self._open.get(address) is win:
                    del self._open[address]
        for i, (address, win) in enumerate(closed):
            if not win.more:
                continue
            try:
                _write(engine, address, win.target, f"{win.more} more refused requests from {address} in the minute "
                       f"from {_hhmm(win.start)} UTC (collapsed): {win.reason}", count=win.more, start=win.start)
            except Exception as exc:  # noqa: BLE001 - only the database's trouble is kept for later
                if not (is_database_error(exc) or isinstance(exc, DatabaseUnavailable)):
                    raise
                with self._lock:  # bounded like the open windows: a long outage keeps the oldest counts
                    self._unwritten = (closed[i:] + self._unwritten)[:self.max_addresses]
                self._report_unwritten(exc)
                return

    def _report_unwritten(self, exc: BaseException) -> None:
        """Say once per minute that counts wait for the database (every request would otherwise log it)."""
        if time.monotonic() - self._reported >= 60:
            self._reported = time.monotonic()
            log.warning("refused-request counts are kept until the database answers again (%s)", first_line(exc))


def _hhmm(start: int) -> str:
    return datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _write(engine: Engine, address: str, target: str, reason: str, *, count: int, start: int) -> None:
    record_refusal(actor=anonymous_actor(address, "api"), action="api.authenticate", target=target, reason=reason,
                   uow=UnitOfWork(engine), after={"address": address, "count": count, "window_start": _hhmm(start)})
