"""Review figures: progress per queue and reviewer, quality per agent type over time, agreement between reviewers
(Cohen's kappa) and between the judge and people. All aggregates in SQL, within the acting user's shops."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.config import get_settings
from core.models import ReviewQueue, ReviewQueueItem, ReviewRecord, ReviewState, utcnow
from core.queries.scope import require_read, shop_filter


def queue_progress(session: Session, *, actor: Actor, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per queue: items, done, open, held under a live lease, and reviews per item wanted."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    now, i, q = now or utcnow(), ReviewQueueItem, ReviewQueue
    rows = session.execute(
        select(q.name, q.description, q.reviews_per_item, q.order_by, func.count(i.id),
               func.count(i.done_at), func.count(case((i.lease_expires_at > now, 1))))
        .outerjoin(i, (i.queue_id == q.id) & _scope_true(actor, i))
        .group_by(q.id, q.name, q.description, q.reviews_per_item, q.order_by).order_by(q.name)).all()
    return [{"queue": n, "description": d, "reviews_per_item": per, "order_by": o, "total": t, "done": done,
             "open": t - done, "held": held} for n, d, per, o, t, done, held in rows]


def held_item(session: Session, *, actor: Actor, queue: str | None = None,
              now: datetime | None = None) -> dict[str, Any] | None:
    """The item of QUEUE (any queue: None) that ACTOR holds under a live lease, if any (what Next item hands back)."""
    require_read(actor, Permission.REVIEW_CONVERSATIONS)
    i, q = ReviewQueueItem, ReviewQueue
    row = session.execute(
        select(i.id, i.conversation_id, q.name, i.lease_expires_at).join(q, q.id == i.queue_id)
        .where(i.done_at.is_(None), i.lease_owner == actor.username, i.lease_expires_at > (now or utcnow()),
               *([q.name == queue] if queue is not None else []))
        .order_by(i.priority, i.id).limit(1)).first()
    return None if row is None else dict(zip(("item_id", "conversation_id", "queue", "lease_expires_at"), row))


def _scope_true(actor: Actor, item: Any) -> Any:
    conds = shop_filter(actor, item.shop_id)
    return conds[0] if conds else True


def reviewer_progress(session: Session, *, actor: Actor, days: int = 7) -> list[dict[str, Any]]:
    """Per reviewer: reviews (current and edits) in the last DAYS days, and their mean rating."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    r, st = ReviewRecord, ReviewState
    since = utcnow() - timedelta(days=days)
    rows = session.execute(
        select(r.reviewer, func.count(), func.sum(case((r.replaces_id.is_not(None), 1), else_=0)), func.avg(r.rating),
               func.max(r.created_at))
        .join(st, st.conversation_id == r.conversation_id)
        .where(r.created_at >= since, *shop_filter(actor, st.shop_id))
        .group_by(r.reviewer).order_by(func.count().desc())).all()
    return [{"reviewer": who, "reviews": n, "edits": int(edits or 0), "mean_rating": float(avg or 0), "last": last}
            for who, n, edits, avg, last in rows]


def quality_by_type(session: Session, *, actor: Actor, days: int = 30) -> list[dict[str, Any]]:
    """Per day and agent type: reviews, mean rating, flag rate and mean judge score (for the quality charts)."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    st = ReviewState
    day = func.date(st.reviewed_at)
    rows = session.execute(
        select(day, st.agent_type, func.count(st.rating), func.avg(st.rating),
               func.sum(case((st.flags != "", 1), else_=0)), func.avg(st.judge_rating))
        .where(st.reviewed_at >= utcnow() - timedelta(days=days), st.rating.is_not(None), *shop_filter(actor, st.shop_id))
        .group_by(day, st.agent_type).order_by(day, st.agent_type)).all()
    return [{"day": str(d), "agent_type": t, "reviews": n, "mean_rating": float(avg or 0),
             "flag_rate": float(flagged or 0) / n if n else 0.0, "judge": None if j is None else float(j)}
            for d, t, n, avg, flagged, j in rows]


def flag_counts(session: Session, *, actor: Actor) -> list[dict[str, Any]]:
    """Per agent type and flag: how many reviewed conversations carry it (the patterns an engineer acts on)."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    st, out = ReviewState, []
    for flag in get_settings().review_flag_names():
        rows = session.execute(select(st.agent_type, func.count()).where(
            st.flags.like(f"%,{flag},%"), *shop_filter(actor, st.shop_id)).group_by(st.agent_type)).all()
        out += [{"agent_type": t, "flag": flag, "conversations": n} for t, n in rows]
    return sorted(out, key=lambda r: -r["conversations"])


def cohen_kappa(pairs: list[tuple[Any, Any]]) -> float | None:
    """Cohen's kappa of two raters over PAIRS of labels; None when it is undefined (no pairs, or one label only)."""
    n = len(pairs)
    if n == 0:
        return None
    agree = sum(a == b for a, b in pairs) / n
    left, right = defaultdict(int), defaultdict(int)
    for a, b in pairs:
        left[a] += 1
        right[b] += 1
    chance = sum(left[k] * right.get(k, 0) for k in left) / (n * n)
    return None if chance == 1 else (agree - chance) / (1 - chance)


def reviewer_agreement(session: Session, *, actor: Actor) -> list[dict[str, Any]]:
    """Per queue: Cohen's kappa between the first two reviewers of each item, on the rating and on each flag."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    r, st = ReviewRecord, ReviewState
    rows = session.execute(select(r.queue_id, r.conversation_id, r.rating, r.flags).join(
        st, st.conversation_id == r.conversation_id).where(r.current, r.queue_id.is_not(None),
                                                           *shop_filter(actor, st.shop_id))
        .order_by(r.queue_id, r.conversation_id, r.created_at).limit(50_000)).all()
    names = dict(session.execute(select(ReviewQueue.id, ReviewQueue.name)).all())
    by_item: dict[tuple[int, int], list[tuple[int, list]]] = defaultdict(list)
    for qid, cid, rating, flags in rows:
        by_item[(qid, cid)].append((rating, list(flags or [])))
    return [_queue_kappa(names.get(qid, str(qid)), [v for (q, _c), v in by_item.items() if q == qid and len(v) >= 2])
            for qid in sorted({q for q, _c in by_item})]


def _queue_kappa(name: str, items: list[list[tuple[int, list]]]) -> dict[str, Any]:
    ratings = cohen_kappa([(a[0], b[0]) for a, b, *_ in items])
    flags = {f: cohen_kappa([(f in a[1], f in b[1]) for a, b, *_ in items]) for f in get_settings().review_flag_names()}
    return {"queue": name, "items_with_two_reviews": len(items), "kappa_rating": ratings,
            "kappa_flags": {f: k for f, k in flags.items() if k is not None}}


def judge_agreement(session: Session, *, actor: Actor) -> list[dict[str, Any]]:
    """Per agent type: conversations both the judge and a person rated, exact and within-one agreement, and kappa."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    st = ReviewState
    rows = session.execute(select(st.agent_type, st.rating, st.judge_rating, st.judge_provider).where(
        st.rating.is_not(None), st.judge_rating.is_not(None), *shop_filter(actor, st.shop_id)).limit(100_000)).all()
    by_type: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for agent_type, human, judge, provider in rows:
        by_type[agent_type].append((int(human), round(judge), provider or ""))
    return [{"agent_type": t, "pairs": len(v), "exact": sum(h == j for h, j, _p in v) / len(v),
             "within_one": sum(abs(h - j) <= 1 for h, j, _p in v) / len(v),
             "kappa": cohen_kappa([(h, j) for h, j, _p in v]),
             "providers": ", ".join(sorted({p for *_x, p in v}))} for t, v in sorted(by_type.items())]
