"""Completions gathered into batches: whatever replies are ready go to the database in one statement.

While one batch commits, the replies that arrive meanwhile queue up and form the next; a batch also waits up to
LINGER_SECONDS after its first reply for others (the worker's slots are refilled before the reply is stored, so
the wait costs a conversation's completion a few milliseconds, not its slot, and spares a statement and a commit
per reply it gathers). Each conversation waits for its own outcome (a future the worker's event loop awaits), so its retries,
lease checks and accounting stay exactly as with one completion at a time; a batch that fails fails each of its
conversations' attempts, and each retries on its own.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

from sqlalchemy import Engine

from core.worker import store

_STOP = object()


class Completer:
    """One thread storing replies in batches of up to MAX_BATCH; `complete()` blocks until its own is stored."""

    def __init__(self, engine: Engine, *, worker_id: str, max_batch: int, linger_seconds: float = 0.0) -> None:
        self._engine, self._worker_id, self._max, self._linger = engine, worker_id, max_batch, linger_seconds
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="completer", daemon=True)
        self.batches = self.completions = 0  # for tests and benchmarks: how much batching happened

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the thread (after the conversation threads are done)."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def complete(self, item: store.Completion) -> store.Outcome:
        """Store ITEM with whatever else is ready; raises what the batch's statement raised."""
        return self.submit(item).result()

    def submit(self, item: store.Completion) -> Future:
        """Queue ITEM; the future gives its Outcome (the worker's event loop awaits it without a thread)."""
        done: Future = Future()
        self._queue.put((item, done))
        return done

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            until = time.monotonic() + self._linger
            while len(batch) < self._max:
                try:
                    nxt = self._queue.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)  # end after this batch
                    break
                batch.append(nxt)
            self._store(batch)

    def _store(self, batch: list[tuple[store.Completion, Future]]) -> None:
        started = time.perf_counter()
        try:
            outcomes = store.complete_many(self._engine, worker_id=self._worker_id, batch=[i for i, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to each waiting conversation, which retries
            for _, done in _timed(batch, started):
                done.set_exception(exc)
            return
        self.batches += 1
        self.completions += len(batch)
        for item, done in _timed(batch, started):
            done.set_result(outcomes[item.conversation_id])


def _timed(batch: list[tuple[store.Completion, Future]], started: float) -> list[tuple[store.Completion, Future]]:
    """Mark each future with the database time of its batch (`db_ms`): the worker's DB-time figure counts the
    statement, not the wait for the batch to form."""
    ms = (time.perf_counter() - started) * 1000
    for _, done in batch:
        done.db_ms = ms
    return batch
