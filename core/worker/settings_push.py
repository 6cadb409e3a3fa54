"""The kill switch pushed: a dedicated PostgreSQL connection LISTENs for settings changes.

While it is connected the worker learns of every change the moment it commits; when it drops, the worker
polls again (SettingsCache's TTL) until the listener is back. The listener LISTENs first and only then
re-reads the settings, so no change made while it was away can slip through unseen.
"""
from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

from core.settings_channel import CHANNEL

log = logging.getLogger("core.worker")

# A silent network partition is noticed by TCP keepalives within about 5 + 2 × 3 seconds.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class SettingsListener:
    """Runs on its own thread: ON_CONNECTED(True/False) as the push comes and goes, ON_CHANGE(conn) per NOTIFY.

    ON_CHANGE gets the listening connection itself (autocommit, no pool, no ping): re-reading the settings and
    acknowledging them on it takes two round trips, not a pool checkout each.
    """

    def __init__(self, engine: Engine, *, on_change: Callable[[Connection], None],
                 on_connected: Callable[[Connection | None], None], stopping: threading.Event,
                 retry_seconds: float) -> None:
        self._on_change, self._on_connected = on_change, on_connected
        self._engine = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args={
            "connect_timeout": 5, "application_name": "agentops-listen", **_KEEPALIVES})
        self._stopping, self._retry = stopping, retry_seconds
        self.backend_pid: int | None = None  # the listening connection's server process (tests terminate it)
        self.connections = 0  # how many times it (re)connected
        self._thread = threading.Thread(target=self._run, name="settings-listener", daemon=True)

    def start(self) -> None:
        """Start listening in the background."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread after `stopping` is set (it wakes at least once a second)."""
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            conn = None
            try:
                conn = self._connect()
                self._on_connected(conn)
                self._listen(conn)
            except Exception as exc:  # noqa: BLE001 - any failure means: poll until we are back
                log.warning("settings listener lost (%s); polling the settings until it reconnects",
                            type(exc).__name__)
            finally:
                self.backend_pid = None
                self._on_connected(None)
                if conn is not None:
                    _close_quietly(conn)
            self._stopping.wait(self._retry)

    def _connect(self) -> Connection:
        conn = self._engine.connect()
        conn.exec_driver_sql(f'LISTEN "{CHANNEL}"')
        self.backend_pid = conn.connection.driver_connection.get_backend_pid()
        self.connections += 1
        return conn

    def _listen(self, conn: Connection) -> None:
        raw = conn.connection.driver_connection
        while not self._stopping.is_set():
            ready, _, _ = select.select([raw], [], [], 1.0)
            if not ready:
                continue
            raw.poll()  # raises when the server closed the connection: back to polling
            if raw.notifies:
                raw.notifies.clear()  # several changes at once: one re-read covers them all
                self._on_change(conn)


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # it is already gone
        conn.close()
