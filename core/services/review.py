"""Review changes: submit (and edit) a review, escalate and resolve, break-glass reveals, and a mitigation from a
flagged pattern. Each is one service: permission → change → audit → one commit. Queues live in review_queues."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from core import audit
from core.auth import Actor, Permission
from core.config import get_settings
from core.errors import NotFound, UserInputError
from core.inputs import required_reason, short_text
from core.models import Conversation, RevealGrant, ReviewQueueItem, ReviewRecord, ReviewState, utcnow
from core.queries.scope import shop_filter
from core.services.guard import require
from core.uow import UnitOfWork

# Where a review state may go from each state (escalate asks for a second look; resolve closes it).
TRANSITIONS = {"escalated": ("unreviewed", "reviewed", "resolved"), "resolved": ("escalated",)}

MAX_NOTE = 4000  # a review note: refused beyond this with a sentence (it was cut there without a word)


def check_review(rating: Any, flags: Sequence[str]) -> tuple[int, list[str]]:
    """RATING and FLAGS against the score schema in config; bad input is one sentence."""
    s = get_settings()
    try:
        value = int(rating)
    except (TypeError, ValueError):
        raise UserInputError(f"The rating must be a whole number from {s.review_rating_min} to "
                             f"{s.review_rating_max} (got {rating!r}).") from None
    if not s.review_rating_min <= value <= s.review_rating_max or str(value) != str(rating).strip():
        raise UserInputError(f"The rating must be a whole number from {s.review_rating_min} to "
                             f"{s.review_rating_max} (got {rating!r}).")
    known = s.review_flag_names()
    unknown = sorted({f for f in flags if f not in known})
    if unknown:
        raise UserInputError(f"Unknown flag {', '.join(unknown)}; known flags: {', '.join(known)}.")
    return value, sorted(set(flags), key=known.index)


def _conversation(uow: UnitOfWork, actor: Actor, conversation_id: int, permission: Permission,
                  action: str) -> Conversation:
    """The conversation, after the permission check with its shop (refusals audited)."""
    conv = uow.session.get(Conversation, conversation_id)
    target = f"conversation {conversation_id}"
    if conv is None:
        require(uow, actor, permission, action=action, target=target)
        raise NotFound(f"No conversation with id {conversation_id}.")
    require(uow, actor, permission, action=action, target=target, shop_id=conv.shop_id)
    return conv


def _state_row(uow: UnitOfWork, conv: Conversation) -> ReviewState:
    row = uow.session.get(ReviewState, conv.id, with_for_update=True)
    if row is None:
        row = ReviewState(conversation_id=conv.id, shop_id=conv.shop_id, agent_type=conv.agent_type,
                          state="unreviewed", flags="", judge_flags="", reviews=0)
        uow.session.add(row)
    return row


def submit_review(*, actor: Actor, conversation_id: int, rating: Any, flags: Sequence[str] = (), note: str = "",
                  uow: UnitOfWork, queue_id: int | None = None) -> dict[str, Any]:
    """Rate and flag a conversation; a second submission by the same reviewer is an edit (history kept)."""
    value, flag_list = check_review(rating, flags)
    note = short_text(note, "A review note", most=MAX_NOTE)
    with uow:
        conv = _conversation(uow, actor, conversation_id, Permission.REVIEW_CONVERSATIONS, "review.submit")
        me, now = actor.username, utcnow()
        previous = uow.session.scalars(select(ReviewRecord).where(
            ReviewRecord.conversation_id == conv.id, ReviewRecord.reviewer == me, ReviewRecord.current)
            .with_for_update()).first()
        if previous is not None:
            previous.current = False
        rec = ReviewRecord(conversation_id=conv.id, queue_id=queue_id, reviewer=me, rating=value, flags=flag_list,
                           note=note, replaces_id=previous.id if previous else None,
                           current=True, created_at=now)
        uow.session.add(rec)
        row = _state_row(uow, conv)
        before = {"state": row.state, "rating": row.rating, "flags": row.flags.strip(",")}
        row.state = "reviewed" if row.state == "unreviewed" else row.state
        row.reviewer, row.reviewed_at, row.rating, row.updated_at = me, now, value, now
        row.flags = "," + ",".join(flag_list) + "," if flag_list else ""
        row.reviews = (row.reviews or 0) + (previous is None)
        uow.session.flush()
        if previous is None:
            counted = _count_towards_items(uow, conv.id, me, now)
            rec.queue_id = rec.queue_id or counted  # agreement per queue needs to know which queue it was
        action = "review.edit" if previous else "review.submit"
        audit.append(uow.session, actor=actor, action=action, target=f"conversation {conv.id}", reason=rec.note,
                     before=before, after={"rating": value, "flags": flag_list, "record": rec.id})
        uow.commit()
        return {"id": rec.id, "conversation_id": conv.id, "rating": value, "flags": flag_list, "edit": bool(previous)}


def _count_towards_items(uow: UnitOfWork, conversation_id: int, reviewer: str, now: datetime) -> int | None:
    """A first review by REVIEWER counts once in every open queue item of the conversation; enough reviews close it.

    Returns the queue of the item REVIEWER held (else of the first open item), None outside every queue."""
    from core.models import ReviewQueue

    items = list(uow.session.scalars(select(ReviewQueueItem).where(
        ReviewQueueItem.conversation_id == conversation_id, ReviewQueueItem.done_at.is_(None))
        .order_by(ReviewQueueItem.id).with_for_update()))
    held = [i.queue_id for i in items if i.lease_owner == reviewer]
    for item in items:
        needed = uow.session.get(ReviewQueue, item.queue_id).reviews_per_item
        item.reviews_done += 1
        if item.lease_owner == reviewer:
            item.lease_owner, item.lease_expires_at = None, None
        if item.reviews_done >= needed:
            item.done_at = now
    return held[0] if held else (items[0].queue_id if items else None)


def set_review_state(*, actor: Actor, conversation_id: int, state: str, reason: str,
                     uow: UnitOfWork) -> dict[str, Any]:
    """Escalate a conversation for a second look, or resolve an escalated one; a reason is required."""
    if state not in TRANSITIONS:
        raise UserInputError(f"A review can be set to {' or '.join(TRANSITIONS)}, not {state!r}.")
    reason = required_reason(reason, f"A reason is required to mark a conversation {state}.")
    with uow:
        conv = _conversation(uow, actor, conversation_id, Permission.REVIEW_CONVERSATIONS, f"review.{state}")
        row = _state_row(uow, conv)
        if row.state not in TRANSITIONS[state]:
            raise UserInputError(f"Conversation {conv.id} is {row.state}; it cannot be marked {state}.")
        before, now = row.state, utcnow()
        row.state, row.updated_at = state, now
        row.reviewer, row.reviewed_at = actor.username, now
        audit.append(uow.session, actor=actor, action=f"review.{state}", target=f"conversation {conv.id}",
                     reason=reason, before={"state": before}, after={"state": state})
        uow.commit()
        return {"conversation_id": conv.id, "state": state}


def reveal_client(*, actor: Actor, conversation_id: int, reason: str, uow: UnitOfWork,
                  minutes: float | None = None) -> dict[str, Any]:
    """Break glass: show ACTOR this conversation's client data unmasked for a while (audited, reason required)."""
    reason = required_reason(reason, "A reason is required to reveal a client's name, phone and e-mail.")
    minutes = minutes or get_settings().review_reveal_minutes
    with uow:
        conv = _conversation(uow, actor, conversation_id, Permission.READ_CONVERSATIONS, "client.reveal")
        now = utcnow()
        grant = RevealGrant(username=actor.username, conversation_id=conv.id, reason=reason, created_at=now,
                            expires_at=now + timedelta(minutes=minutes))
        uow.session.add(grant)
        audit.append(uow.session, actor=actor, action="client.reveal", target=f"conversation {conv.id}",
                     reason=reason, after={"shop_id": conv.shop_id, "minutes": minutes,
                                                   "expires_at": grant.expires_at})
        uow.commit()
        return {"conversation_id": conv.id, "expires_at": grant.expires_at}


def disable_agent_type_from_pattern(*, actor: Actor, agent_type: str, evidence: dict[str, Any], reason: str,
                                    uow: UnitOfWork) -> Any:
    """Disable AGENT_TYPE everywhere through the controls service; the audit reason carries the review evidence."""
    from core.services.controls import set_agent_type_enabled

    reason = required_reason(reason, "A reason is required to disable an agent type.")
    counts = _pattern_counts(uow, actor, agent_type)
    shown = ", ".join(f"{k}={v}" for k, v in {**evidence, **counts}.items() if v not in (None, "", []))
    return set_agent_type_enabled(actor=actor, agent_type=agent_type, enabled=False, uow=uow,
                                  reason=f"{reason} [review evidence: {shown}]")


def _pattern_counts(uow: UnitOfWork, actor: Actor, agent_type: str) -> dict[str, Any]:
    """Reviewed, flagged and low-rated conversations of AGENT_TYPE (the evidence a mitigation cites)."""
    r = ReviewState
    with uow:
        reviewed, flagged, low = uow.session.execute(select(
            func.count(r.rating), func.count(func.nullif(r.flags, "")),
            func.count(func.nullif(r.rating > 2, True))).where(
            r.agent_type == agent_type, *shop_filter(actor, r.shop_id))).one()
    return {"reviewed": reviewed, "flagged": flagged, "rated_1_2": low}


def release_abandoned_leases(*, uow: UnitOfWork, now: datetime | None = None) -> int:
    """Return items whose reviewer's lease ran out to their queues (system housekeeping, no actor)."""
    now = now or utcnow()
    with uow:
        n = uow.session.execute(update(ReviewQueueItem).where(
            ReviewQueueItem.done_at.is_(None), ReviewQueueItem.lease_expires_at < now)
            .values(lease_owner=None, lease_expires_at=None)).rowcount
        uow.commit()
    return int(n or 0)
