"""Checks of client data access: the scope rule holds across shops, and nobody has read outside their scope."""
from __future__ import annotations

from sqlalchemy import func, select

from core.auth import Actor, Role
from core.checklist.outcome import CheckContext, Outcome, failed, passed, verdict
from core.db import read_session
from core.errors import PermissionDenied
from core.models import Conversation
from core.queries.controls import evaluate_rollback_triggers


def _one_conversation_per_shop(ctx: CheckContext) -> dict[int, int]:
    with read_session(ctx.engine) as s:
        rows = s.execute(select(Conversation.shop_id, func.min(Conversation.id)).group_by(Conversation.shop_id)
                         .order_by(Conversation.shop_id).limit(2)).all()
    return dict(rows)


def check_client_access(ctx: CheckContext) -> Outcome:
    """A user of one shop is refused another shop's conversation and client, and sees their own.

    The read is made in-process through the same query the API and console use, and is not recorded as an
    attempt: a check must not fire the "unauthorized access" rollback trigger it is there to guard."""
    convs = _one_conversation_per_shop(ctx)
    if len(convs) < 2:
        return failed("cross-shop read", len(convs), "needs conversations in two shops to test the rule; seed test "
                                                     "data (`python -m core seed --test-data minimal`)")
    (own_shop, own_conv), (other_shop, other_conv) = convs.items()
    owner = Actor(username="checklist-probe", role=Role.SHOP_OWNER, shop_ids=frozenset({own_shop}), source="check")
    from core.queries.conversations import get_conversation_or_raise

    with read_session(ctx.engine) as s:
        own = get_conversation_or_raise(s, actor=owner, conversation_id=own_conv)["shop_id"] == own_shop
        try:
            get_conversation_or_raise(s, actor=owner, conversation_id=other_conv)
            refused = False
        except PermissionDenied:
            refused = True
    value = {"own shop read": own, "other shop refused": refused}
    return verdict(own and refused, "cross-shop read", value,
                   f"a shop {own_shop} user reads shop {own_shop} and is refused shop {other_shop}" if own and refused
                   else f"a shop {own_shop} user was not refused shop {other_shop}'s client data")


def check_unauthorized_access(ctx: CheckContext) -> Outcome:
    """No refused read of client data outside one's scope since deployment (the rollback trigger)."""
    trigger = _trigger(ctx, "unauthorized")
    detail = trigger.detail if trigger.fired else "no refused read of client data in the last 24 h"
    return verdict(not trigger.fired, trigger.label, trigger.value, detail)


def _trigger(ctx: CheckContext, key: str):
    with read_session(ctx.engine) as s:
        return next(t for t in evaluate_rollback_triggers(s, actor=ctx.actor) if t.key == key)


def check_trigger_query_time(ctx: CheckContext) -> Outcome:
    """Rollback trigger: database query time p95 over the last hour below RB_QUERY_MS."""
    t = _trigger(ctx, "query_time")
    if t.value is None:
        return passed(t.label, None, "no timings recorded in the last hour; " + t.detail)
    return verdict(not t.fired, t.label, round(t.value, 1), t.detail)


def check_trigger_memory(ctx: CheckContext) -> Outcome:
    """Rollback trigger: the largest live worker's memory below RB_MEMORY_MB."""
    t = _trigger(ctx, "memory")
    if t.value is None:
        return passed(t.label, None, "no live worker; " + t.detail)
    return verdict(not t.fired, t.label, round(t.value, 1), t.detail)
