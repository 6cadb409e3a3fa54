"""Pre-scores by the judge for queued conversations: pick (one transaction), ask the judge (no transaction held
while the model thinks), store the verdicts and reorder judge-ordered queues (one transaction, one audit record)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import exists, literal_column, select
from sqlalchemy.orm import Session

from core import audit
from core.auth import Actor, Permission
from core.config import get_settings
from core.db import read_session
from core.models import JudgeScore, ReviewQueue, ReviewQueueItem, ReviewState, utcnow
from core.queries.review import get_transcript_or_raise
from core.queries.scope import shop_filter
from core.review.judge import Judge, JudgeUnavailable, Verdict
from core.services.guard import require
from core.uow import UnitOfWork

BUCKET = "((agent_review_queue_items.conversation_id * 2654435761) % 10000)"


def judge_queued(*, actor: Actor, uow: UnitOfWork, limit: int = 100, judge: Judge | None = None) -> dict[str, Any]:
    """Score up to LIMIT open queue items the judge has not scored (a stable JUDGE_SAMPLE_PERCENT of them)."""
    settings = get_settings()
    judge = judge or Judge(settings)
    with uow:
        require(uow, actor, Permission.REVIEW_CONVERSATIONS, action="review.judge", target="review queues")
        ids = _unscored(uow.session, actor, limit, settings.judge_sample_percent)
    verdicts, failed = {}, 0
    with read_session(uow.engine) as s:
        for cid in ids:
            try:
                verdicts[cid] = judge.score(get_transcript_or_raise(s, actor=actor, conversation_id=cid))
            except JudgeUnavailable:
                failed += 1
    with uow:
        for cid, verdict in verdicts.items():
            _store(uow.session, cid, verdict)
        if verdicts:
            audit.append(uow.session, actor=actor, action="review.judge", target="review queues",
                         after={"scored": len(verdicts), "unavailable": failed, "provider": judge.provider})
        uow.commit()
    return {"scored": len(verdicts), "unavailable": failed, "provider": judge.provider}


def _unscored(session: Session, actor: Actor, limit: int, percent: float) -> list[int]:
    i = ReviewQueueItem
    scored = exists().where(JudgeScore.conversation_id == i.conversation_id)
    q = (select(i.conversation_id).where(i.done_at.is_(None), ~scored, *shop_filter(actor, i.shop_id),
                                         literal_column(BUCKET) < int(percent * 100))
         .group_by(i.conversation_id).order_by(i.conversation_id.desc()).limit(max(1, min(limit, 10_000))))
    return list(session.scalars(q))


def _store(session: Session, conversation_id: int, v: Verdict) -> None:
    if session.scalars(select(JudgeScore.id).where(JudgeScore.conversation_id == conversation_id)).first():
        return  # another judge run got there first
    now = utcnow()
    session.add(JudgeScore(conversation_id=conversation_id, rating=v.rating, flags=v.flags, rationale=v.rationale,
                           provider=v.provider, model=v.model, created_at=now))
    state = session.get(ReviewState, conversation_id, with_for_update=True)
    if state is None:
        item = session.scalars(select(ReviewQueueItem).where(ReviewQueueItem.conversation_id == conversation_id)).first()
        state = ReviewState(conversation_id=conversation_id, shop_id=item.shop_id, agent_type=item.agent_type,
                            state="unreviewed", flags="", reviews=0)
        session.add(state)
    state.judge_rating, state.judge_provider, state.judged_at, state.updated_at = v.rating, v.provider, now, now
    state.judge_flags = "," + ",".join(v.flags) + "," if v.flags else ""
    judged_queues = select(ReviewQueue.id).where(ReviewQueue.order_by == "judge")
    for item in session.scalars(select(ReviewQueueItem).where(
            ReviewQueueItem.conversation_id == conversation_id, ReviewQueueItem.queue_id.in_(judged_queues))):
        item.priority = v.rating  # worst judged first
    session.flush()
