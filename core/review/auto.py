"""Queues filled continuously: a worker runs the fill (and the judge) every REVIEW_FILL_SECONDS in a thread of its
own, as the system. Several workers may do so at once: a conversation still enters each queue only once."""
from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from core.auth import system_actor
from core.config import Settings
from core.uow import UnitOfWork

log = logging.getLogger(__name__)


def fill_once(engine: Engine) -> dict[str, int]:
    """One fill of every queue and one judge batch, as the system (what each round of the loop does)."""
    from core.services.review_judge import judge_queued
    from core.services.review_queues import fill_queues

    actor = system_actor("worker", name="worker:review")
    added = fill_queues(actor=actor, uow=UnitOfWork(engine))
    judge_queued(actor=actor, uow=UnitOfWork(engine), limit=50)
    return added


def start_review_loop(engine: Engine, settings: Settings, stopping: threading.Event) -> threading.Thread | None:
    """Start the loop (None when REVIEW_FILL_SECONDS is 0); the first round waits one interval."""
    every = settings.review_fill_seconds
    if not every:
        return None

    def loop() -> None:
        while not stopping.wait(every):
            try:
                fill_once(engine)
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop the worker
                log.warning("review fill failed (%s); trying again in %.0f s", type(exc).__name__, every)

    thread = threading.Thread(target=loop, name="review-fill", daemon=True)
    thread.start()
    return thread
