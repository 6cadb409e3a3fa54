"""Conversations: server-side filters, full-text search, keyset pages, and one transcript by deep link
(?conversation=ID). The alerts page links here with ?agent_type=&shop=&status=&since=&until= (ISO-8601 UTC)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from core.auth import Permission
from core.config import get_settings
from core.db import read_session
from core.errors import AgentOpsError, PermissionDenied
from core.models import AGENT_TYPES, CHANNELS, REVIEW_STATES
from core.queries import review as rq
from core.queries.conversation_filters import STATUSES, ConversationFilter, parse_filter, parse_time
from core.queries.privacy import masks_pii
from core.services.guard import record_refusal
from core.text import counted
from core.uow import UnitOfWork
from dashboard import components, review_widgets

actor = components.page_guard(Permission.READ_CONVERSATIONS, "Conversations")
st.title("Conversations")
LINKED = ("agent_type", "shop", "status", "since", "until")


def _from_link() -> dict[str, Any]:
    """The filters a link carries (the alerts page's contract); a bad value is one sentence and is ignored."""
    raw = {k: st.query_params.get(k) for k in LINKED if st.query_params.get(k)}
    raw["shop_id"] = raw.pop("shop", None)
    try:
        return parse_filter(raw).as_dict()
    except AgentOpsError as exc:
        st.warning(components.plain_md(f"The link's filters were not applied: {exc}"))  # the URL's own words
        return {}


if "conv_filters" not in st.session_state:
    st.session_state["conv_filters"] = _from_link()
    st.session_state["conv_pages"] = [None]
given: dict[str, Any] = st.session_state["conv_filters"]


def _pick(label: str, options: tuple[Any, ...] | list[Any], current: Any, key: str) -> Any:
    choices = ["", *options]
    return st.selectbox(label, choices, index=choices.index(current) if current in choices else 0,
                        format_func=lambda v: "any" if v == "" else str(v), key=key)


def _num(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: str | None) -> datetime | None:
    """A window end as the box shows it: naive UTC, to the minute (the box's finest step)."""
    return parse_time(value, "time").replace(tzinfo=None, second=0, microsecond=0) if value else None


def _moment(picked: datetime | None, given: str | None, *, end: bool) -> datetime | None:
    """The time a box stands for: the exact one it was filled with when left as it was (a link's 10:15:30 is not
    cut to 10:15), else the minute picked; an end takes its whole minute, so that no conversation of it is lost."""
    if picked is None:
        return None
    if given and _shown(given) == picked:
        return parse_time(given, "time")
    return picked.replace(tzinfo=UTC) + (timedelta(minutes=1, microseconds=-1) if end else timedelta())


with st.form("conv_filter_form"):
    a, b, c, d, e = st.columns(5)
    with a:
        status = _pick("Status", STATUSES, given.get("status"), "f_status")
    with b:
        agent_type = _pick("Agent type", AGENT_TYPES, given.get("agent_type"), "f_agent_type")
    shop = c.text_input("Shop id", value=str(given.get("shop_id") or ""), key="f_shop")
    with d:
        channel = _pick("Channel", CHANNELS, given.get("channel"), "f_channel")
    with e:
        state = _pick("Review state", REVIEW_STATES, given.get("review_state"), "f_state")
    f, g, h, i = st.columns(4)
    with f:
        flag = _pick("Flag", get_settings().review_flag_names(), given.get("flag"), "f_flag")
    with g:
        settings = get_settings()
        rating = _pick("Rating", tuple(range(settings.review_rating_min, settings.review_rating_max + 1)),
                       given.get("rating"), "f_rating")
    since = h.datetime_input("From (UTC)", value=_shown(given.get("since")), step=60, key="f_since")
    until = i.datetime_input("Until (UTC)", value=_shown(given.get("until")), step=60, key="f_until")
    j, k, m = st.columns(3)
    provider = j.text_input("Provider", value=given.get("provider") or "", key="f_provider")
    judge_min = k.text_input("Judge score at least", value=_num(given.get("judge_min")), key="f_judge_min")
    judge_max = m.text_input("Judge score at most", value=_num(given.get("judge_max")), key="f_judge_max")
    search = st.text_input("Search messages", value=given.get("search") or "", key="f_search")
    has_error = st.checkbox("Only with an error", value=bool(given.get("has_error")), key="f_error")
    if st.form_submit_button("Apply filters"):
        raw = {"status": status, "agent_type": agent_type, "shop_id": shop.strip(), "channel": channel,
               "review_state": state, "flag": flag, "rating": rating, "search": search,
               "provider": provider.strip(), "judge_min": judge_min.strip(), "judge_max": judge_max.strip(),
               "has_error": True if has_error else None,
               "since": _moment(since, given.get("since"), end=False),
               "until": _moment(until, given.get("until"), end=True)}
        try:
            st.session_state["conv_filters"] = parse_filter(raw).as_dict()
            st.session_state["conv_pages"] = [None]
            st.rerun()
        except AgentOpsError as exc:
            st.error(components.plain_md(str(exc)))

try:
    filters = parse_filter(st.session_state["conv_filters"])
    pages = st.session_state["conv_pages"]
    with read_session() as s:
        page = rq.list_conversations(s, actor=actor, filters=filters, cursor=pages[-1])
except PermissionDenied as exc:  # a shop outside one's scope: an attempt on client data, audited
    record_refusal(actor=actor, action="conversation.read", target=f"shop {filters.shop_id}",
                   reason=f"unauthorized client data: {exc}", uow=UnitOfWork())
    st.error(components.plain_md(f"{exc} This attempt has been recorded."))
    # Forget the refused filter, in the session and in the URL: kept, every later click or reload would record the
    # same attempt again (and feed the "unauthorized access" rollback trigger).
    st.session_state["conv_filters"], st.session_state["conv_pages"] = {}, [None]
    for name in LINKED:
        st.query_params.pop(name, None)
    filters = ConversationFilter()  # and the list without filters, as the caption below says (it showed none)
    with read_session() as s:
        page = rq.list_conversations(s, actor=actor, filters=filters)
except AgentOpsError as exc:
    st.error(components.plain_md(str(exc)))
    filters, page = ConversationFilter(), rq.Page([], None)

rows = [{"created (UTC)" if k == "created_at" else k: v for k, v in
         {**r, "flags": ", ".join(r["flags"]), "created_at": f"{r['created_at']:%Y-%m-%d %H:%M}"}.items()}
        for r in page.rows]
# Said every time: after a refused change of filters the form shows what was typed, the table what was applied.
applied = filters.describe()
st.caption(f"Page {len(st.session_state['conv_pages'])} · {counted(len(rows), 'conversation')}, newest first · "
           + (f"filters applied: {components.plain_md(applied)}" if applied else "no filters applied"))
if filters.search and masks_pii(actor):
    st.caption("Client names, phone numbers and e-mail addresses are masked for you, so the search does not match "
               "them (reveal a conversation to read its client's details)."
               + (" Fewer than a page of matches among the conversations looked at so far: **Next page** looks "
                  "further." if page.next_cursor and len(rows) < rq.page_size() else ""))
st.dataframe(components.visible_in_table(pd.DataFrame(rows).astype(str)) if rows else pd.DataFrame(), hide_index=True,
             width="stretch")
prev, nxt, _ = st.columns([1.4, 1.2, 5])  # wide enough that "Previous page" is not cut
prev.button("Previous page", disabled=len(st.session_state["conv_pages"]) == 1,
            on_click=lambda: st.session_state["conv_pages"].pop())
# The cursor of the page on screen, taken when the button is drawn: the click's rerun reads page 1 again, and with
# new traffic its last row is another one (page 2 repeated rows already seen).
nxt.button("Next page", disabled=page.next_cursor is None,
           on_click=lambda cursor: st.session_state["conv_pages"].append(cursor), args=(page.next_cursor,))

link = st.query_params.get("conversation", "")
# A new deep link fills the box; a dropped one (missing or refused id) leaves what was typed, to be corrected.
if link and (st.session_state.get("open_conv_link") != link or "open_conv_id" not in st.session_state):
    st.session_state["open_conv_id"] = link
st.session_state["open_conv_link"] = link
with st.form("open_conversation"):
    wanted = st.text_input("Open conversation id", key="open_conv_id")
    if st.form_submit_button("Open"):
        if wanted.strip().isdigit():
            st.query_params["conversation"] = wanted.strip()
            st.rerun()
        st.error(components.plain_md(f"A conversation id is a number (got {wanted!r})."))

opened = st.query_params.get("conversation")
if opened and opened.isdigit():
    t = review_widgets.load_transcript(actor, int(opened))
    if t is None:  # missing or refused (audited once): the link is dropped so a rerun does not record it again
        del st.query_params["conversation"]
    else:
        review_widgets.transcript(t)
        review_widgets.reveal_form(actor, t)
        review_widgets.review_form(actor, t)
        review_widgets.state_form(actor, t)
elif opened:
    st.error(components.plain_md(f"A conversation id is a number (got {opened!r})."))
