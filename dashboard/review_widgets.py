"""A transcript and the forms that act on it (review, escalate/resolve, reveal), shared by the Conversations and
Review pages. Client and model text is drawn with st.text / st.dataframe only: never markdown, never HTML."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.auth import Actor, Permission
from core.config import get_settings
from core.db import read_session
from core.errors import NotFound, PermissionDenied
from core.queries import review as rq
from core.services import review as rs
from core.services.guard import record_refusal
from core.text import visible_controls
from core.uow import UnitOfWork
from dashboard.components import act, form_key, plain_md, visible_in_table


def load_transcript(actor: Actor, conversation_id: int) -> dict[str, Any] | None:
    """The transcript, or one sentence on the page (a read outside one's shops is audited as unauthorized)."""
    try:
        with read_session() as s:
            return rq.get_transcript_or_raise(s, actor=actor, conversation_id=conversation_id)
    except NotFound as exc:
        st.error(plain_md(str(exc)))
    except PermissionDenied as exc:
        record_refusal(actor=actor, action=rq.TRANSCRIPT_READ, target=f"conversation {conversation_id}",
                       reason=f"unauthorized client data: {exc}", uow=UnitOfWork())
        st.error(plain_md(f"{exc} This attempt has been recorded."))
    return None


def transcript(t: dict[str, Any]) -> None:
    """Header, client, messages (plain text), template, failure, reviews, judge and audit trail."""
    st.subheader(f"Conversation {t['id']}")
    c = t["client"]
    st.text(f"{t['agent_type']} · {t['channel']} · {t['status']} · shop {t['shop_id']} ({t['shop']}) · "
            f"created {t['created_at']:%Y-%m-%d %H:%M:%S} UTC\n"
            f"Client: {c['name']} · {c['phone']} · {c['email']}" + (" (masked)" if c["masked"] else "")
            + (" · opted out" if c["opted_out"] else ""))
    if t["error"] or t["status"] == "failed":
        st.text(f"Attempts {t['attempts']} · provider {t['provider'] or '–'} · worker {t['worker'] or '–'}\n"
                f"Error: {visible_controls(t['error']) or '–'}")
    for m in t["messages"]:
        with st.container(border=True):
            said = f"{m['role']} · {m['created_at']:%Y-%m-%d %H:%M:%S} UTC"
            if m["role"] == "agent":  # a client's message has no latency, tokens or cost to show
                said += (f" · {m['latency_ms'] or '–'} ms · {m['prompt_tokens']}+{m['completion_tokens']} tokens · "
                         f"${m['cost_usd']:.6f}")
            st.text(said)
            st.text(visible_controls(m["content"]))
    if not t["messages"]:
        st.text("No messages.")
    with st.expander("Template and context"):
        st.text("System prompt:\n" + t["template"].get("system_prompt", "–"))
        st.text("Initial message:\n" + t["template"].get("initial_message", "–"))
        st.text("Variables: " + ", ".join(t["template"].get("required_variables", [])))
    _history(t)


def _history(t: dict[str, Any]) -> None:
    r = t["review"]
    st.text(f"Review: {r['state']} · rating {r['rating'] or '–'} · flags {', '.join(r['flags']) or '–'}"
            + (f" · by {r['reviewer']}" if r["reviewer"] else ""))
    if t["judge"]:
        j = t["judge"]
        st.text(f"Judge ({j['provider']}, {j['model']}): {j['rating']:g} · {', '.join(j['flags']) or 'no flags'} · "
                f"{visible_controls(j['rationale'])}")
    if t["reviews"]:
        st.caption("Review history (edits kept)")
        reviews = [{**r, "flags": ", ".join(r["flags"])} for r in t["reviews"]]  # words, not a list's repr
        st.dataframe(visible_in_table(pd.DataFrame(reviews).astype(str)), hide_index=True, width="stretch")
    if t["audit"]:
        st.caption("Audit trail")
        st.dataframe(visible_in_table(pd.DataFrame(t["audit"]).astype(str)), hide_index=True, width="stretch")


def reveal_form(actor: Actor, t: dict[str, Any]) -> None:
    """Break glass: a reason, and the client's data shows unmasked for REVIEW_REVEAL_MINUTES (audited)."""
    if not t["client"]["masked"]:
        return
    key = form_key(f"reveal_{t['id']}")
    with st.form(key):
        st.caption(f"Client data is masked. Revealing it is audited and lasts {get_settings().review_reveal_minutes:g} "
                   "minutes.")
        reason = st.text_input("Reason for revealing (required)", key=f"{key}_reason")
        if st.form_submit_button("Reveal client data"):
            if revealed := act(lambda: rs.reveal_client(actor=actor, conversation_id=t["id"], reason=reason,
                                                        uow=UnitOfWork())):
                revealed.done("Client data revealed; the reveal is in the audit log.", reset=(f"reveal_{t['id']}",))


def review_form(actor: Actor, t: dict[str, Any], *, queue_id: int | None = None,
                keep: dict[str, Any] | None = None) -> None:
    """Rating, flags and note in one form; a second submission is an edit (history kept). Once a review is saved,
    KEEP is set in the session."""
    if not actor.can(Permission.REVIEW_CONVERSATIONS):
        return
    s, name = get_settings(), f"review_{t['id']}"
    key = form_key(name)
    with st.form(key):
        ratings = list(range(s.review_rating_min, s.review_rating_max + 1))
        rating = st.radio("Rating", ratings, index=None, horizontal=True, key=f"{key}_rating")
        flags = st.multiselect("Flags", list(s.review_flag_names()), key=f"{key}_flags")
        note = st.text_area("Note", key=f"{key}_note")
        if st.form_submit_button("Submit review", type="primary"):
            if rating is None:
                st.error("Choose a rating first.")
            elif saved := act(lambda: rs.submit_review(actor=actor, conversation_id=t["id"], rating=rating,
                                                       flags=flags, note=note, queue_id=queue_id, uow=UnitOfWork())):
                saved.done(f"Review of conversation {t['id']} saved.", reset=(name,), keep=keep)


def state_form(actor: Actor, t: dict[str, Any]) -> None:
    """Escalate for a second look, or resolve an escalation; a reason is required."""
    if not actor.can(Permission.REVIEW_CONVERSATIONS):
        return
    target = "resolved" if t["review"]["state"] == "escalated" else "escalated"
    name = f"state_{t['id']}"
    key = form_key(name)
    with st.form(key):
        reason = st.text_input(f"Reason to mark it {target} (required)", key=f"{key}_reason")
        if st.form_submit_button("Resolve" if target == "resolved" else "Escalate"):
            if moved := act(lambda: rs.set_review_state(actor=actor, conversation_id=t["id"], state=target,
                                                        reason=reason, uow=UnitOfWork())):
                moved.done(f"Conversation {t['id']} is {target}.", reset=(name,))


def agreement_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Cohen's kappa per queue as text, "–" where a queue has no pair of reviews yet (the cells read None and {})."""
    def cell(v: Any) -> str:
        empty = v is None or (isinstance(v, float) and v != v) or (isinstance(v, dict | list) and not v)  # v != v: NaN
        return "–" if empty else str(v)

    return pd.DataFrame(rows).astype(object).map(cell)
