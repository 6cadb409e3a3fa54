"""Integration checks: one synthetic conversation end to end through the worker, and what is saved."""
from __future__ import annotations

import time

from sqlalchemy import delete, func, select, text

from core import audit
from core.checklist.outcome import CheckContext, Outcome, failed, verdict, warned
from core.db import read_session
from core.models import AgentInstance, Conversation, Message, Shop
from core.queries.settings import get_activation_state
from core.retention import REVIEW_TABLES
from core.uow import UnitOfWork

TERMINAL = ("completed", "failed", "opted_out")
SAMPLE = 20
POLL_SECONDS = 0.1


def _test_target(ctx: CheckContext) -> tuple[int, str] | str:
    """(shop, agent type) the synthetic conversation may run on now, or why there is none."""
    with read_session(ctx.engine) as s:
        state = get_activation_state(s)
        shops = list(s.scalars(select(Shop.id).order_by(Shop.id)))
        wanted = ctx.settings.checklist_test_shop_id
        candidates = [wanted] if wanted is not None else shops
        scope = state.scope(shop_ids=shops)
        for shop in candidates:
            types = s.scalars(select(AgentInstance.agent_type).where(
                AgentInstance.shop_id == shop, AgentInstance.status == "active").order_by(AgentInstance.agent_type))
            allowed = [t for t in types if scope.allows(shop_id=shop, agent_type=t)]
            if allowed:
                return shop, allowed[0]
    if not state.running:
        return "the agent system is off: no worker would take the conversation"
    return f"no active instance in scope on {'shop ' + str(wanted) if wanted is not None else 'any shop'}"


def check_synthetic_conversation(ctx: CheckContext) -> Outcome:
    """A conversation on a test shop is taken by a worker, answered and saved; then it is removed again."""
    target = _test_target(ctx)
    if isinstance(target, str):
        return failed("synthetic conversation", None, target)
    shop, agent_type = target
    from core.services.conversations import enqueue_conversations

    started = time.monotonic()
    conv_id = enqueue_conversations(actor=ctx.actor, count=1, uow=UnitOfWork(ctx.engine), agent_type=agent_type,
                                    shop_id=shop, action="checklist.synthetic_conversation")[0]
    try:
        status, messages = _wait(ctx, conv_id, started + ctx.settings.checklist_synthetic_timeout_seconds)
    finally:
        removed = _remove(ctx, conv_id)
    seconds = round(time.monotonic() - started, 2)
    value = {"conversation": conv_id, "shop": shop, "agent_type": agent_type, "status": status,
             "agent_messages": messages, "seconds": seconds, "cleaned_up": removed}
    if status not in TERMINAL:
        return failed("synthetic conversation", value, f"still {status} after {seconds} s: is a worker running?")
    return verdict(status == "completed" and messages > 0, "synthetic conversation", value,
                   f"{status} with {messages} agent message(s) saved in {seconds} s")


def _wait(ctx: CheckContext, conv_id: int, deadline: float) -> tuple[str, int]:
    while True:
        with read_session(ctx.engine) as s:
            status = s.scalar(select(Conversation.status).where(Conversation.id == conv_id))
            messages = s.scalar(select(func.count()).select_from(Message).where(
                Message.conversation_id == conv_id, Message.role == "agent"))
        if status in TERMINAL or time.monotonic() >= deadline:
            return status, int(messages or 0)
        time.sleep(POLL_SECONDS)


def _remove(ctx: CheckContext, conv_id: int) -> bool:
    """Delete the synthetic conversation unless a worker still holds it (audited either way), and take it out of
    the health figures: the rollups from its hour are recomputed from the conversations that remain."""
    from core import rollups

    with UnitOfWork(ctx.engine) as uow:
        status, created_at = uow.session.execute(select(Conversation.status, Conversation.created_at)
                                                 .where(Conversation.id == conv_id)).one()
        held = status == "in_progress"
        if not held:  # no foreign key cascades to the review rows on PostgreSQL (partitioned): delete them here
            for table in REVIEW_TABLES:
                uow.session.execute(text(f"DELETE FROM {table} WHERE conversation_id = :id"), {"id": conv_id})
            uow.session.execute(delete(Message).where(Message.conversation_id == conv_id))
            uow.session.execute(delete(Conversation).where(Conversation.id == conv_id))
            # It was counted when queued and when answered: left in, Agent health counted a conversation (its
            # reply time, tokens and cost) that no longer exists, one more after every checklist run.
            rollups.rebuild(uow.session, since=created_at)
        audit.append(uow.session, actor=ctx.actor, action="checklist.synthetic_cleanup", target=f"conversation {conv_id}",
                     outcome="ok" if not held else "failed", reason="held by a worker" if held else "removed")
        uow.commit()
    return not held


def check_conversations_saved(ctx: CheckContext) -> Outcome:
    """The newest completed conversations each have their agent reply saved."""
    with read_session(ctx.engine) as s:
        ids = list(s.scalars(select(Conversation.id).where(Conversation.status == "completed")
                             .order_by(Conversation.id.desc()).limit(SAMPLE)))
        with_reply = set(s.scalars(select(Message.conversation_id).distinct().where(
            Message.conversation_id.in_(ids), Message.role == "agent"))) if ids else set()
    if not ids:
        return failed("completed conversations with a saved reply", 0, "no completed conversation in the database")
    missing = [i for i in ids if i not in with_reply]
    return verdict(not missing, "completed conversations with a saved reply", f"{len(with_reply)} of {len(ids)}",
                   f"without a saved reply: {missing[:10]}" if missing else f"the newest {len(ids)} all saved")


def check_failures_recorded(ctx: CheckContext) -> Outcome:
    """Failed conversations are marked failed with their error (the seed's try/except around each conversation)."""
    with read_session(ctx.engine) as s:
        rows = s.execute(select(Conversation.id, Conversation.error).where(Conversation.status == "failed")
                         .order_by(Conversation.id.desc()).limit(SAMPLE)).all()
    if not rows:
        return warned("failed conversations with an error", 0, "no failed conversation to inspect")
    silent = [r.id for r in rows if not (r.error or "").strip()]
    return verdict(not silent, "failed conversations with an error", f"{len(rows) - len(silent)} of {len(rows)}",
                   f"failed without an error: {silent[:10]}" if silent else "every failure carries its error")

