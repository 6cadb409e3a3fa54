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
from typing import Any

from sqlalchemy import Engine

from core.settings_channel import CHANNEL

log = logging.getLogger("core.worker")

# A silent network partition is noticed by TCP keepalives within about 5 + 2 × 3 seconds.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class SettingsListener:
    """Runs on its own thread: ON_CONNECTED(True/False) as the push comes and goes, ON_CHANGE() per NOTIFY."""

    def __init__(self, engine: Engine, *, on_change: Callable[[], None], on_connected: Callable[[bool], None],
                 stopping: threading.Event, retry_seconds: float) -> None:
        self._engine, self._on_change, self._on_connected = engine, on_change, on_connected
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
                self._on_connected(True)
                self._listen(conn)
            except Exception as exc:  # noqa: BLE001 - any failure means: poll until we are back
                log.warning("settings listener lost (%s); polling the settings until it reconnects",
                            type(exc).__name__)
            finally:
                self.backend_pid = None
                self._on_connected(False)
                if conn is not None:
                    _close_quietly(conn)
            self._stopping.wait(self._retry)

    def _connect(self) -> Any:
        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        conn = self._engine.dialect.dbapi.connect(*cargs, **{**cparams, "connect_timeout": 5,
                                                              "application_name": "agentops-listen", **_KEEPALIVES})
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'LISTEN "{CHANNEL}"')
        self.backend_pid = conn.get_backend_pid()
        self.connections += 1
        return conn

    def _listen(self, conn: Any) -> None:
        while not self._stopping.is_set():
            ready, _, _ = select.select([conn], [], [], 1.0)
            if not ready:
                continue
            conn.poll()  # raises when the server closed the connection: back to polling
            if conn.notifies:
                conn.notifies.clear()  # several changes at once: one re-read covers them all
                self._on_change()


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # it is already gone
        conn.close()
