"""`python -m core worker`: the claim loop, the conversations in flight, the heartbeat.

One asyncio event loop holds every conversation in flight: the model is called through the asyncio openai
client, so a hundred calls in flight cost a hundred sockets, not a hundred threads. Database steps run on a
small thread pool (blocking drivers), completions on the batching Completer's thread; the heartbeat, the
settings listener and the review loop keep their own threads.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

import psutil
from sqlalchemy import Connection, Engine

from core import sentry
from core.breaker import CircuitBreaker
from core.config import Settings, get_settings
from core.llm import Provider, Reply, make_provider
from core.models import utcnow
from core.queries.settings import ActivationState
from core.retry import acall_model_with_retries, adb_retry, db_retry, is_database_error, is_retryable_model_error
from core.worker import store
from core.worker.completer import Completer
from core.worker.context import Loaded, Prompt, TemplateCache, read_conversation, render_prompt
from core.worker.settings_cache import SettingsCache
from core.worker.settings_push import SettingsListener

log = logging.getLogger("core.worker")
T = TypeVar("T")
DB_THREADS = 16  # at most, whatever AGENT_MAX_CONCURRENT is: the blocking database steps' threads
COMPLETION_LINGER_SECONDS = 0.02  # a batch of completions waits this long for more replies to share it


class BreakerOpen(Exception):
    """The provider's breaker is open: the conversation is deferred, not failed."""


class Worker:
    """Holds up to AGENT_MAX_CONCURRENT conversations at a time; several workers share one PostgreSQL."""

    def __init__(self, *, engine: Engine, settings: Settings, provider: Provider | None = None,
                 worker_id: str | None = None) -> None:
        self.engine, self.settings = engine, settings
        self.provider = provider or make_provider(settings)
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.breaker = CircuitBreaker(name=self.provider.name, failure_threshold=settings.breaker_failure_threshold,
                                      reset_seconds=settings.breaker_reset_seconds)
        self.settings_cache = SettingsCache(engine, ttl_seconds=settings.agent_settings_ttl_seconds,
                                            recheck_seconds=settings.agent_settings_recheck_seconds)
        self.templates = TemplateCache()
        # Replies stored in batches (one statement and one commit for whatever is ready; PostgreSQL).
        self.completer = Completer(engine, worker_id=self.id, max_batch=max(1, settings.agent_max_concurrent),
                                   linger_seconds=COMPLETION_LINGER_SECONDS)
        self.stopping = threading.Event()
        self.listener: SettingsListener | None = None
        if settings.agent_settings_push and engine.dialect.name == "postgresql":
            self.listener = SettingsListener(engine, on_change=self._settings_changed, on_connected=self._push_up,
                                             stopping=self.stopping,
                                             retry_seconds=settings.agent_settings_listen_retry_seconds)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._awake: asyncio.Event | None = None  # set (from any thread) when a slot frees or the settings change
        self._tasks: set[asyncio.Task] = set()
        # Claimed ahead, not started yet (in _in_flight too: their leases are renewed), and the settings version
        # they were claimed under; at most _ahead of them.
        self._ready: collections.deque[tuple[int, Loaded | None, int]] = collections.deque()
        self._ahead = settings.agent_max_concurrent // 2
        self._claiming: asyncio.Task | None = None  # the claim under way, if any (one at a time)
        self._beat_now = threading.Event()
        self._lock = threading.Lock()  # the heartbeat thread reads what the loop changes
        self._in_flight: set[int] = set()
        # Held conversations whose reply is in hand and being stored: their slot is already refilled, so the
        # next model call need not wait for the completion's commit (they still hold, and renew, their lease).
        self._storing: set[int] = set()
        self._lease_until: dict[int, float] = {}  # time.monotonic() by which each held lease has surely run out
        self._db_ms: dict[int, float] = {}  # database time spent so far on each held conversation
        # In normal running one or two are busy (claims come one at a time, completions in batches on their own
        # thread); more help only in an outage, where each conversation retries its own step, up to the pools'
        # connections anyway.
        self._db = ThreadPoolExecutor(max_workers=min(DB_THREADS, max(4, settings.agent_max_concurrent)),
                                      thread_name_prefix="db")
        self._db_samples: list[float] = []
        self.processed = 0
        self.database_error: Exception | None = None
        self.started_at = utcnow()
        self._seen_version, self._seen_at = 0, None
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._rss_start_mb = self._process.memory_info().rss / 1e6

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self, *, max_seconds: float | None = None) -> int:
        """Claim and hold conversations until stopped (signal, stop(), or MAX_SECONDS); returns how many finished."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        if self.listener is not None:
            self.listener.start()
        self.completer.start()
        from core.review.auto import start_review_loop

        start_review_loop(self.engine, self.settings, self.stopping)  # review queues stay filled (issue 12)
        log.info("worker %s started (provider %s, max %d in flight)", self.id, self.provider.name,
                 self.settings.agent_max_concurrent)
        try:
            asyncio.run(self._main(deadline))
        finally:
            self.stopping.set()
            self.completer.stop()  # every conversation is done: nothing more will be queued
            self._db.shutdown(wait=True)
        if self.listener is not None:
            self.listener.join(timeout=5)
        self.database_error = self._final_heartbeat()
        log.info("worker %s stopped after %d conversations", self.id, self.processed)
        return self.processed

    async def _main(self, deadline: float | None) -> None:
        self._loop, self._awake = asyncio.get_running_loop(), asyncio.Event()
        try:
            while not self.stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                if not await self._fill():
                    wait = self.settings.agent_poll_seconds
                    await self._nap(wait if deadline is None else min(wait, max(0.0, deadline - time.monotonic())))
            self.stopping.set()
            if self._claiming is not None:
                await self._claiming
            await self._release_ready()
            while self._tasks:  # conversations in flight finish
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            await self.provider.aclose()

    async def _nap(self, seconds: float) -> None:
        """Sleep until woken (a slot freed, the settings changed, stop) or SECONDS passed."""
        try:
            await asyncio.wait_for(self._awake.wait(), seconds)
        except TimeoutError:
            pass
        self._awake.clear()

    def _wake(self) -> None:
        """Wake the claim loop; safe from any thread."""
        loop, awake = self._loop, self._awake
        if loop is not None and awake is not None:
            try:
                loop.call_soon_threadsafe(awake.set)
            except RuntimeError:  # the loop has ended: nothing to wake
                pass

    def stop(self) -> None:
        """Stop claiming; conversations in flight finish (or are released if they cannot)."""
        self.stopping.set()
        self._wake()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the worker cleanly."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    async def _in_thread(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """FN on the database threads (blocking drivers), awaited without holding up the loop."""
        return await self._loop.run_in_executor(self._db, functools.partial(fn, *args, **kwargs))

    async def _settings(self) -> ActivationState | None:
        fresh, state = self.settings_cache.cached()
        return state if fresh else await self._in_thread(self.settings_cache.get)

    async def _fill(self) -> int:
        """Start claimed work in the free slots, and claim ahead in the background; returns how many started.

        It claims ahead of need (up to half the slots, again once half of that is used), one claim at a time
        and beside the conversations rather than in their way: a freed slot starts its next conversation at
        once instead of waiting a claim's round trip, and claims come in batches rather than one per slot.
        """
        state = await self._settings()
        self._note_settings(state)
        if state is None or not state.running or self.stopping.is_set() or self.breaker.snapshot().state == "open":
            await self._release_ready()
            return 0
        # Claimed under older settings: the scope may have changed since, so they go back.
        await self._release_ready(keep_version=state.version)
        started = self._start_ready()
        if self._claiming is None and len(self._ready) <= self._ahead // 2:
            want = self._free() + self._ahead - len(self._ready)
            if want > 0:
                self._claiming = asyncio.create_task(self._claim(state.version, want))
        return started

    async def _claim(self, version: int, want: int) -> None:
        """Claim up to WANT conversations under settings VERSION into the ready queue, then wake the loop."""
        t0, asked_at = time.perf_counter(), time.monotonic()
        try:
            claimed = await self._in_thread(
                store.claim_and_load, self.engine, worker_id=self.id, limit=want, scope=self.settings_cache.scope(),
                lease_seconds=self.settings.agent_lease_seconds, settings_version=version, templates=self.templates)
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the loop
            log.warning("claim failed (%s); trying again shortly", type(exc).__name__)
            await asyncio.sleep(1.0)
            claimed = []
        share = (time.perf_counter() - t0) * 1000 / max(1, len(claimed))
        with self._lock:
            for conv_id, _ in claimed:
                self._in_flight.add(conv_id)
                self._lease_until[conv_id] = asked_at + self.settings.agent_lease_seconds
                self._db_ms[conv_id] = share
        self._ready.extend((conv_id, loaded, version) for conv_id, loaded in claimed)
        self._claiming = None
        if claimed:  # when nothing was due, the loop polls again in AGENT_POLL_SECONDS (or when woken)
            self._awake.set()

    def _free(self) -> int:
        """Slots with no model call of theirs in flight (held but not started, or storing, do not count)."""
        with self._lock:
            busy = len(self._in_flight) - len(self._storing) - len(self._ready)
        return self.settings.agent_max_concurrent - busy

    def _start_ready(self) -> int:
        n = min(self._free(), len(self._ready))
        for _ in range(n):
            conv_id, loaded, _version = self._ready.popleft()
            task = asyncio.create_task(self._hold(conv_id, loaded))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return n

    async def _release_ready(self, keep_version: int | None = None) -> None:
        """Hand back what was claimed ahead and not started (kill switch, changed scope, breaker, stop), but
        what was claimed under KEEP_VERSION."""
        if all(version == keep_version for _, _, version in self._ready):
            return
        stale = [conv_id for conv_id, _, version in self._ready if version != keep_version]
        self._ready = collections.deque(entry for entry in self._ready if entry[2] == keep_version)
        for conv_id in stale:
            await self._safely(conv_id, lambda c=conv_id: store.release(self.engine, conversation_id=c,
                                                                        worker_id=self.id, retry_at=None))
            with self._lock:
                self._db_ms.pop(conv_id, None)
            self._forget(conv_id)

    # -- the settings, pushed or polled -----------------------------------------------------------------
    def _note_settings(self, state: ActivationState | None) -> None:
        with self._lock:
            if state is None or state.version == self._seen_version:
                return
            self._seen_version, self._seen_at = state.version, utcnow()
        self._beat_now.set()  # tell the console at once that this worker has seen the change

    def _settings_changed(self, conn: Connection) -> None:
        """A change was announced (or the listener is back): read it, claim (or not) at once, acknowledge it.

        Read and acknowledged on the listening connection itself: no pool, no heartbeat's other work in the way.
        """
        state = self.settings_cache.refresh(conn)
        self._note_settings(state)
        self._wake()
        with self._lock:
            version, seen_at = self._seen_version, self._seen_at
        if state is not None and seen_at is not None:
            try:
                store.acknowledge_settings(conn, worker_id=self.id, version=version, seen_at=seen_at)
            except Exception as exc:  # noqa: BLE001 - the next heartbeat carries it anyway
                log.warning("settings acknowledgement not written (%s)", type(exc).__name__)

    def _push_up(self, conn: Connection | None) -> None:
        self.settings_cache.set_pushed(conn is not None)
        if conn is not None:  # LISTEN is in place: whatever changed while nobody listened is read now
            self._settings_changed(conn)

    # -- one conversation -----------------------------------------------------------------------------
    async def _hold(self, conv_id: int, loaded: Loaded | None) -> None:
        try:
            with sentry.conversation_scope(conv_id):  # a task's own context: the scope follows it across awaits
                await self._converse(conv_id, started=time.perf_counter(), loaded=loaded)
        finally:
            with self._lock:
                self._db_samples.append(self._db_ms.pop(conv_id, 0.0))
            self._forget(conv_id)
            self._awake.set()

    async def _converse(self, conv_id: int, *, started: float, loaded: Loaded | None) -> None:
        """Load (unless the claim brought it), ask the model, store the reply; every outcome but a database error
        is recorded."""
        try:
            if loaded is None:
                loaded = await self._in_lease(conv_id, lambda: self._load(conv_id), what="loading a conversation")
            sentry.tag_agent(agent_type=loaded.row.agent_type, shop_id=loaded.row.shop_id)
            prompt = render_prompt(loaded, utcnow())
            if prompt.client_opted_out:
                await self._finish(conv_id, "opted_out", None)
            elif prompt.attempts > store.MAX_CLAIMS:  # every worker that held it died: stop the loop here
                await self._finish(conv_id, "failed", f"gave up after {prompt.attempts - 1} claims that never "
                                                      "finished (the workers holding it stopped each time)")
            else:
                await self._reply(conv_id, prompt, started=started)
        except BreakerOpen:
            retry_at = utcnow() + timedelta(seconds=max(1.0, self.breaker.seconds_until_retry()))
            await self._safely(conv_id, lambda: store.release(self.engine, conversation_id=conv_id,
                                                              worker_id=self.id, retry_at=retry_at))
        except Exception as exc:  # noqa: BLE001 - one conversation's failure must not stop the worker
            if not is_database_error(exc):
                await self._fail(conv_id, exc)
                return
            # The database's trouble, never the conversation's (a connection that died on its way back to the
            # pool raised psycopg2's own error, and a completed conversation was reported failed): its lease
            # expires and it is taken up again, or it is already done.
            log.error("conversation %s: the database failed (%s) until it could no longer be sure of its lease; "
                      "nothing recorded, it will be taken up again when the lease expires", conv_id, type(exc).__name__)

    async def _reply(self, conv_id: int, prompt: Prompt, *, started: float) -> None:
        reply = await self._call_model(prompt)
        response_ms = int((time.perf_counter() - started) * 1000)
        with self._lock:
            self._storing.add(conv_id)
        self._awake.set()  # the slot is free for the next model call while this reply is stored
        # The reply is kept in hand and the completion retried until the lease runs out.
        item = store.Completion(conversation_id=conv_id, reply=reply, response_ms=response_ms)
        outcome = await self._in_lease_async(conv_id, lambda: self._store_reply(conv_id, item), what="completing")
        if outcome.accepted:
            with self._lock:
                self.processed += 1
        else:
            log.warning("conversation %s: completion rejected (%s)", conv_id, outcome.reason)

    def _lease_end(self, conv_id: int) -> float:
        with self._lock:
            return self._lease_until.get(conv_id, time.monotonic())

    def _count_db(self, conv_id: int, since: float) -> None:
        with self._lock:
            self._db_ms[conv_id] = self._db_ms.get(conv_id, 0.0) + (time.perf_counter() - since) * 1000

    async def _in_lease(self, conv_id: int, fn: Callable[[], T], *, what: str) -> T:
        """FN on a database thread, tried again on transient errors for as long as this worker surely holds the
        lease."""
        until, started = self._lease_end(conv_id), time.perf_counter()
        try:
            return await self._in_thread(db_retry, fn, what=what, until=until)
        finally:
            self._count_db(conv_id, started)

    async def _in_lease_async(self, conv_id: int, fn: Callable[[], Awaitable[T]], *, what: str) -> T:
        """`_in_lease` for a step another thread carries out (the batched completion): awaited, retried alike;
        FN counts its own database time."""
        return await adb_retry(fn, what=what, until=self._lease_end(conv_id))

    async def _store_reply(self, conv_id: int, item: store.Completion) -> store.Outcome:
        done = self.completer.submit(item)
        try:
            return await asyncio.wrap_future(done)
        finally:
            with self._lock:
                self._db_ms[conv_id] = self._db_ms.get(conv_id, 0.0) + getattr(done, "db_ms", 0.0)

    def _forget(self, conv_id: int) -> None:
        with self._lock:
            self._in_flight.discard(conv_id)
            self._storing.discard(conv_id)
            self._lease_until.pop(conv_id, None)

    def _load(self, conv_id: int) -> Loaded:
        with self.engine.connect() as conn:
            return read_conversation(conn, conv_id, self.templates)

    async def _call_model(self, prompt: Prompt) -> Reply:
        if not self.breaker.allow():
            raise BreakerOpen()
        attempts = [0]

        async def once() -> Reply:
            if attempts[0] and not self.breaker.allow():
                raise BreakerOpen()
            attempts[0] += 1
            return await self.provider.areply(system=prompt.system, user=prompt.user, fallback=prompt.fallback)

        try:
            reply = await acall_model_with_retries(
                once, attempts=self.settings.agent_retry_attempts, base_seconds=self.settings.agent_retry_base_seconds,
                max_seconds=self.settings.agent_retry_max_seconds, on_failure=lambda _e: self.breaker.record_failure())
        except BreakerOpen:
            raise
        except Exception as exc:
            if is_retryable_model_error(exc) and self.breaker.snapshot().state == "open":
                raise BreakerOpen() from exc
            self.breaker.release_trial()
            exc.model_attempts = attempts[0]  # type: ignore[attr-defined]
            raise
        self.breaker.record_success()
        return reply

    async def _finish(self, conv_id: int, status: str, error: str | None) -> None:
        await self._safely(conv_id, lambda: store.finish_without_reply(
            self.engine, conversation_id=conv_id, worker_id=self.id, status=status, error=error,
            provider=self.provider.name))

    async def _fail(self, conv_id: int, exc: BaseException) -> None:
        kind = f"{type(exc).__module__}.{type(exc).__name__}".removeprefix("builtins.")
        tries = getattr(exc, "model_attempts", 0)
        attempts = f" (after {tries} attempt{'s' if tries != 1 else ''})" if tries else ""
        error = f"{kind}: {exc}{attempts}"[:2000]
        sentry.REPORTED_LOG.error("conversation %s failed: %s", conv_id, error)
        await self._finish(conv_id, "failed", error)
        sentry.report(exc)  # once, inside the conversation's scope: tagged with its agent type, shop and id

    async def _safely(self, conv_id: int, fn: Callable[[], object]) -> None:
        try:
            await self._in_lease(conv_id, fn, what="updating a conversation")
        except Exception as exc:  # noqa: BLE001 - the lease will expire and another worker takes over
            log.error("could not record a conversation's outcome (%s); its lease will expire", type(exc).__name__)

    # -- heartbeat ------------------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self.stopping.is_set():
            self._beat_now.wait(self.settings.agent_heartbeat_seconds)
            self._beat_now.clear()
            if self.stopping.is_set():
                break
            try:
                with self._lock:
                    held = list(self._in_flight)
                asked_at = time.monotonic()
                renewed = store.renew_leases(self.engine, worker_id=self.id, ids=held,
                                             lease_seconds=self.settings.agent_lease_seconds)
                with self._lock:
                    for conv_id in set(renewed) & self._in_flight:
                        self._lease_until[conv_id] = asked_at + self.settings.agent_lease_seconds
                self._write_heartbeat()
            except Exception as exc:  # noqa: BLE001
                log.warning("heartbeat failed (%s)", type(exc).__name__)

    def _final_heartbeat(self, attempts: int = 3, pause: float = 0.5) -> Exception | None:
        """The stopped heartbeat, tried a few times: a worker that still cannot reach its database as it stops did not
        do its job (the caller exits non-zero), but one connection dropped by a restart or an idle reaper is no
        verdict on the run."""
        error = None
        for attempt in range(attempts):
            error = self._write_heartbeat(stopped=True)
            if error is None:
                return None
            if attempt + 1 < attempts:
                time.sleep(pause)
        return error

    def _write_heartbeat(self, *, stopped: bool = False) -> Exception | None:
        """Write this worker's heartbeat row; returns the error if the database refused it."""
        with self._lock:
            samples, self._db_samples = self._db_samples, []
            in_flight, processed = len(self._in_flight), self.processed
        now = utcnow()
        row = {"id": self.id, "host": socket.gethostname(), "pid": os.getpid(), "started_at": self.started_at,
               "last_seen_at": now, "stopped_at": now if stopped else None, "in_flight": in_flight,
               "processed": processed, "settings_version": self._seen_version, "settings_seen_at": self._seen_at,
               "breaker_state": self.breaker.snapshot().state,
               "rss_mb": self._process.memory_info().rss / 1e6, "rss_start_mb": self._rss_start_mb,
               "cpu_percent": self._process.cpu_percent(None),
               "env_enabled": get_settings().agent_system_enabled}  # the switch state_of obeys in this process
        try:
            store.write_heartbeat(self.engine, row, samples)
        except Exception as exc:  # noqa: BLE001
            log.warning("heartbeat not written (%s)", type(exc).__name__)
            return exc
        return None
