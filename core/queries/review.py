"""Review reads: the conversation list (filters, search, keyset pages), one transcript, queue and reviewer progress.

Every read takes the acting user: support see their assigned shops only, other roles see client data masked."""
from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.auth import Actor, Permission
from core.config import get_settings
from core.errors import NotFound, PermissionDenied, UserInputError
from core.inputs import is_row_id
from core.models import AuditRecord, Client, Conversation, JudgeScore, Message, ReviewRecord, ReviewState, Shop
from core.queries.conversation_filters import ConversationFilter, conversation_conditions
from core.queries.privacy import Shown, client_view, masks_pii, readable_matches, redactor, revealed_conversations
from core.queries.scope import require_read, shop_filter

# The refusal of a read outside one's shops counts as an unauthorized client-data attempt (rollback trigger).
TRANSCRIPT_READ = "transcript.read"


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's creation time and id (newest first)."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str | None) -> Cursor | None:
        """The cursor in TOKEN, or None; a damaged token is one sentence."""
        if not token:
            return None
        try:
            at, cid = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return cls(datetime.fromisoformat(at), int(cid))
        except (ValueError, TypeError, json.JSONDecodeError):
            raise UserInputError("The page cursor is damaged; start again from the first page.") from None


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def _check_scope(session: Session, actor: Actor, f: ConversationFilter) -> None:
    require_read(actor, Permission.READ_CONVERSATIONS)
    if f.shop_id is not None and not actor.sees_shop(f.shop_id):
        if session.get(Shop, f.shop_id) is None:  # a typo, not an attempt on another shop's clients
            raise UserInputError(f"There is no shop {f.shop_id}.")
        raise PermissionDenied(f"{actor.username} has no access to the clients of shop {f.shop_id}.")


def list_conversations(session: Session, *, actor: Actor, filters: ConversationFilter | None = None,
                       cursor: str | None = None, limit: int | None = None) -> Page:
    """One page of conversations (newest first) matching FILTERS within ACTOR's shops; keyset-paginated."""
    f = filters or ConversationFilter()
    _check_scope(session, actor, f)
    limit = page_size(limit)
    c, r = Conversation, ReviewState
    q = (select(c.id, c.created_at, c.shop_id, c.agent_type, c.channel, c.status, c.provider, c.attempts,
                c.response_time_ms, c.error, c.client_id, r.state, r.rating, r.flags, r.judge_rating)
         .outerjoin(r, r.conversation_id == c.id)
         .where(*shop_filter(actor, c.shop_id), *conversation_conditions(f, session)))
    keep = None
    if f.search and masks_pii(actor):
        def keep(batch: list[Any]) -> list[Any]:
            found = readable_matches(session, actor=actor, term=f.search, conversation_ids=[x.id for x in batch])
            return [x for x in batch if x.id in found]
    rows, last = _page_rows(session, q, Cursor.decode(cursor), limit, keep)
    out = _with_clients(session, actor, [_row(x) for x in rows])
    return Page(out, Cursor(last.created_at, last.id).encode() if last else None)


# A masked reader's search drops the conversations found only by their client's own details; pages are filled from
# growing batches (a page's worth first, then up to SEARCH_BATCH), looking at up to SEARCH_EXAMINED rows before a
# page is returned short (its cursor goes on from the last row looked at).
SEARCH_BATCH = 400
SEARCH_EXAMINED = 1000


def _page_rows(session: Session, q: Any, after: Cursor | None, limit: int,
               keep: Callable[[list[Any]], list[Any]] | None) -> tuple[list[Any], Any]:
    """Up to LIMIT rows of Q (newest first) after AFTER that KEEP keeps, and the row the next page starts after
    (None on the last page)."""
    c = Conversation
    kept, examined, batch_size = [], 0, limit + 1
    while True:
        page_q = q if after is None else q.where(or_(c.created_at < after.created_at,
                                                     and_(c.created_at == after.created_at, c.id < after.id)))
        batch = session.execute(page_q.order_by(c.created_at.desc(), c.id.desc()).limit(batch_size)).all()
        kept += batch if keep is None else keep(batch)
        examined += len(batch)
        if len(kept) > limit:
            return kept[:limit], kept[limit - 1]
        if len(batch) < batch_size:
            return kept, None
        after = batch[-1]
        if examined >= SEARCH_EXAMINED:  # a short page; the next one carries on from the last row looked at
            return kept, after
        batch_size = min(SEARCH_BATCH, batch_size * 4)  # most of a page was dropped: look further at once


def page_size(limit: int | None = None) -> int:
    """Rows per page of conversations: LIMIT, else the configured size, within 1–500."""
    return max(1, min(limit or get_settings().review_page_size, 500))


def _row(x: Any) -> dict[str, Any]:
    return {"id": x.id, "created_at": x.created_at, "shop_id": x.shop_id, "agent_type": x.agent_type,
            "channel": x.channel, "status": x.status, "provider": x.provider, "attempts": x.attempts,
            "response_time_ms": x.response_time_ms, "error": (x.error or "").splitlines()[0] if x.error else None,
            "client_id": x.client_id, "review_state": x.state or "unreviewed", "rating": x.rating,
            "flags": [f for f in (x.flags or "").split(",") if f], "judge_rating": x.judge_rating}


def _with_clients(session: Session, actor: Actor, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = {r["client_id"] for r in rows}
    clients = {cl.id: cl for cl in session.scalars(select(Client).where(Client.id.in_(ids)))} if ids else {}
    shown = revealed_conversations(session, actor=actor, conversation_ids=[r["id"] for r in rows])
    for row in rows:
        cl = clients.get(row.pop("client_id"))
        masked = masks_pii(actor) and row["id"] not in shown
        row["client"] = client_view(cl.first_name, cl.last_name, None, None, masked=masked)["name"] if cl else "–"
    return rows


def get_transcript_or_raise(session: Session, *, actor: Actor, conversation_id: int) -> dict[str, Any]:
    """Everything about one conversation: messages, template, context, failure, reviews, judge score, audit trail.

    NotFound for an unknown id; PermissionDenied outside ACTOR's shops (the surface audits it as an
    unauthorized client-data attempt, action transcript.read)."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    conv = session.get(Conversation, conversation_id) if is_row_id(conversation_id) else None
    if conv is None:
        raise NotFound(f"No conversation with id {conversation_id}.")
    if not actor.sees_shop(conv.shop_id):
        raise PermissionDenied(f"{actor.username} has no access to the clients of shop {conv.shop_id}.")
    client, shop = session.get(Client, conv.client_id), session.get(Shop, conv.shop_id)
    masked = masks_pii(actor) and conv.id not in revealed_conversations(session, actor=actor,
                                                                        conversation_ids=[conv.id])
    shown = redactor(client if masked else None)
    return {
        "id": conv.id, "shop_id": conv.shop_id, "shop": shop.name if shop else "", "agent_type": conv.agent_type,
        "channel": conv.channel, "status": conv.status, "created_at": conv.created_at,
        "completed_at": conv.completed_at, "response_time_ms": conv.response_time_ms, "attempts": conv.attempts,
        "provider": conv.provider, "worker": conv.lease_owner, "error": conv.error,
        "prompt_tokens": conv.prompt_tokens, "completion_tokens": conv.completion_tokens,
        "cost_usd": float(conv.cost_usd or 0),
        "client": client_view(client.first_name, client.last_name, client.phone, client.email, masked=masked)
        | {"opted_out": client.opted_out},
        "template": _template(conv.agent_type),
        "messages": _messages(session, conv.id, shown),
        "review": _review_state(session, conv.id), "reviews": _reviews(session, conv.id, shown),
        "judge": _judge(session, conv.id, shown), "audit": _audit_trail(session, conv.id, shown),
    }


def _template(agent_type: str) -> dict[str, Any]:
    from core.templates import load_templates

    spec = load_templates().get(agent_type)
    if spec is None:
        return {}
    return {"system_prompt": spec.system_prompt, "initial_message": spec.initial_message,
            "required_variables": list(spec.required_variables), "channel": spec.channel}


def _messages(session: Session, conversation_id: int, shown: Shown) -> list[dict[str, Any]]:
    """The messages in order, their text as SHOWN (redactor)."""
    from core.llm import cost_usd

    model = get_settings().openai_model
    msgs = session.scalars(select(Message).where(Message.conversation_id == conversation_id)
                           .order_by(Message.created_at, Message.id))
    return [{"id": m.id, "role": m.role, "content": shown(m.content), "created_at": m.created_at,
             "latency_ms": m.latency_ms,
             "prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens,
             "cost_usd": cost_usd(model, prompt_tokens=m.prompt_tokens, completion_tokens=m.completion_tokens)}
            for m in msgs]


def _review_state(session: Session, conversation_id: int) -> dict[str, Any]:
    st = session.get(ReviewState, conversation_id)
    if st is None:
        return {"state": "unreviewed", "reviewer": None, "reviewed_at": None, "rating": None, "flags": []}
    return {"state": st.state, "reviewer": st.reviewer, "reviewed_at": st.reviewed_at, "rating": st.rating,
            "flags": [f for f in st.flags.split(",") if f]}


def _reviews(session: Session, conversation_id: int, shown: Shown) -> list[dict[str, Any]]:
    rows = session.scalars(select(ReviewRecord).where(ReviewRecord.conversation_id == conversation_id)
                           .order_by(ReviewRecord.created_at, ReviewRecord.id))
    return [{"id": r.id, "reviewer": r.reviewer, "rating": r.rating, "flags": list(r.flags or []),
             "note": shown(r.note), "current": r.current, "replaces": r.replaces_id, "at": r.created_at} for r in rows]


def _judge(session: Session, conversation_id: int, shown: Shown) -> dict[str, Any] | None:
    j = session.scalars(select(JudgeScore).where(JudgeScore.conversation_id == conversation_id)).one_or_none()
    if j is None:
        return None
    return {"rating": j.rating, "flags": list(j.flags or []), "rationale": shown(j.rationale),
            "provider": j.provider, "model": j.model, "at": j.created_at}


def _audit_trail(session: Session, conversation_id: int, shown: Shown) -> list[dict[str, Any]]:
    a = AuditRecord
    rows = session.scalars(select(a).where(a.target == f"conversation {conversation_id}").order_by(a.seq).limit(200))
    return [{"at": r.created_at, "actor": r.actor, "action": r.action, "outcome": r.outcome,
             "reason": shown(r.reason)} for r in rows]



EXPORT_COLUMNS = ("conversation_id", "created_at", "shop_id", "agent_type", "status", "client", "review_state",
                  "rating", "flags", "reviewer", "reviewed_at", "note", "judge_rating", "judge_provider")


def export_reviews(session: Session, *, actor: Actor, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every reviewed conversation in ACTOR's shops with its current review, client data masked as ACTOR sees it;
    read in keyset batches, so an export of any size holds one batch in memory."""
    require_read(actor, Permission.READ_CONVERSATIONS)
    st, c, cl, after = ReviewState, Conversation, Client, 0
    while True:
        rows = session.execute(
            select(st, c.created_at, c.status, cl).join(c, c.id == st.conversation_id)
            .join(cl, cl.id == c.client_id).where(st.conversation_id > after, st.rating.is_not(None),
                                                   *shop_filter(actor, st.shop_id))
            .order_by(st.conversation_id).limit(batch)).all()
        if not rows:
            return
        shown = revealed_conversations(session, actor=actor, conversation_ids=[r[0].conversation_id for r in rows])
        notes = _current_notes(session, [r[0].conversation_id for r in rows])
        for state, created_at, status, client in rows:
            masked = masks_pii(actor) and state.conversation_id not in shown
            as_read = redactor(client if masked else None)
            yield {"conversation_id": state.conversation_id, "created_at": created_at, "shop_id": state.shop_id,
                   "agent_type": state.agent_type, "status": status,
                   "client": client_view(client.first_name, client.last_name, None, None, masked=masked)["name"],
                   "review_state": state.state, "rating": state.rating, "flags": state.flags.strip(","),
                   "reviewer": state.reviewer, "reviewed_at": state.reviewed_at,
                   "note": as_read(notes.get(state.conversation_id, "")), "judge_rating": state.judge_rating,
                   "judge_provider": state.judge_provider}
        after = rows[-1][0].conversation_id


def _current_notes(session: Session, ids: list[int]) -> dict[int, str]:
    r = ReviewRecord
    rows = session.execute(select(r.conversation_id, r.note).where(r.conversation_id.in_(ids), r.current)
                           .order_by(r.created_at)).all()
    return {cid: note for cid, note in rows}
