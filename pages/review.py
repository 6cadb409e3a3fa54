"""Review queues: progress, the next item under a lease, the review form, quality over time, judge-versus-human
agreement, and (engineers) disabling an agent type from a flagged pattern."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.auth import Permission
from core.db import read_session
from core.queries import review_stats
from core.queries.review_stats import held_item
from core.services import review as rs
from core.services import review_queues
from core.uow import UnitOfWork
from dashboard import components, review_widgets
from dashboard.charts import daily_axis

actor = components.page_guard(Permission.READ_CONVERSATIONS, "Review queues")
st.title("Review queues")
reviewer = actor.can(Permission.REVIEW_CONVERSATIONS)
with read_session() as s:
    queues = review_stats.queue_progress(s, actor=actor)

st.subheader("Queues")
if queues:
    st.dataframe(pd.DataFrame(queues), hide_index=True, width="stretch")
else:
    st.info("No queues yet. Filling creates the default ones: failed, opt-outs, complaints and a daily sample.")
if reviewer:
    with st.form("fill_queues"):
        if st.form_submit_button("Fill queues now"):
            added = components.act(lambda: review_queues.fill_queues(actor=actor, uow=UnitOfWork()))
            if added:
                added.done("Queues filled: " + ", ".join(f"{k} +{v}" for k, v in sorted(added.value.items())))

FORGET_ITEM = {"review_item": None}  # done with it: not looked up again as a held item


if reviewer and queues:
    st.subheader("Review")
    item = st.session_state.get("review_item")
    if item is None and "review_item" not in st.session_state:  # a reload: the lease outlives the browser tab
        with read_session() as s:
            item = st.session_state["review_item"] = held_item(s, actor=actor)
    if item and "review_queue" not in st.session_state and item["queue"] in [q["queue"] for q in queues]:
        # The picker shows the held item's queue: after a reload it showed the first queue, and the next item
        # came from there.
        st.session_state["review_queue"] = item["queue"]
    with st.form("next_item"):
        queue = st.selectbox("Queue", [q["queue"] for q in queues], key="review_queue")
        if st.form_submit_button("Next item", type="primary"):
            got = components.act(lambda: review_queues.next_item(actor=actor, queue=queue, uow=UnitOfWork()))
            if got and got.value is None:
                st.session_state["review_item"] = None
                st.info(f"Queue {queue} has nothing left for you.")
            elif got:  # drawn again: the Queues table above was drawn before the item was taken, held counts it now
                got.done(keep={"review_item": got.value})
    item = st.session_state.get("review_item")
    if item:
        st.caption(f"Reviewing item {item['item_id']} from the “{item['queue']}” queue; it is held for you until "
                   f"{item['lease_expires_at']:%H:%M:%S} UTC (Skip sends it to the back of the queue).")
        t = review_widgets.load_transcript(actor, item["conversation_id"])
        if t:
            review_widgets.transcript(t)
            review_widgets.reveal_form(actor, t)
            review_widgets.review_form(actor, t, keep=FORGET_ITEM)
        with st.form("skip_item"):
            if st.form_submit_button("Skip (give it back)"):
                if released := components.act(lambda: review_queues.release_item(actor=actor, item_id=item["item_id"],
                                                                                 uow=UnitOfWork())):
                    released.done(components.plain_md(f"Item {item['item_id']} went back to the end of the "
                                                      f"“{item['queue']}” queue."), keep=FORGET_ITEM)

with read_session() as s:
    people = review_stats.reviewer_progress(s, actor=actor)
    quality = review_stats.quality_by_type(s, actor=actor)
    judge = review_stats.judge_agreement(s, actor=actor)
    kappa = review_stats.reviewer_agreement(s, actor=actor)
    patterns = review_stats.flag_counts(s, actor=actor)

st.subheader("Reviewers (7 days)")
people = [{**p, "mean_rating": round(p["mean_rating"], 2), "last": f"{p['last']:%Y-%m-%d %H:%M} UTC"} for p in people]
st.dataframe(pd.DataFrame(people).astype(str) if people else pd.DataFrame(), hide_index=True, width="stretch")
st.subheader("Quality over time")
if quality:
    df = pd.DataFrame(quality)
    left, right = st.columns(2)
    left.plotly_chart(daily_axis(px.line(df, x="day", y="mean_rating", color="agent_type", markers=True,
                                         title="Mean rating per agent type")), width="stretch")
    flags = px.bar(df, x="day", y="flag_rate", color="agent_type", barmode="group",
                   title="Share of reviews with a flag")
    flags.update_yaxes(range=[0, 1], tickformat=".0%")  # a share: with no flag at all plotly drew −1 to 1
    right.plotly_chart(daily_axis(flags), width="stretch")
    if df["judge"].notna().any():
        st.plotly_chart(daily_axis(px.line(df, x="day", y="judge", color="agent_type", markers=True,
                                           title="Mean judge score of reviewed conversations")), width="stretch")
else:
    st.text("No reviews yet.")
st.subheader("Judge versus people")
st.caption("Conversations both the judge and a person rated. An offline-heuristic judge is a rule of thumb, not a model.")
st.dataframe(pd.DataFrame(judge).astype(str) if judge else pd.DataFrame(), hide_index=True, width="stretch")
if kappa:
    st.subheader("Agreement between reviewers (Cohen's kappa)")
    st.dataframe(review_widgets.agreement_table(kappa), hide_index=True, width="stretch")

st.subheader("Flagged patterns")
st.dataframe(pd.DataFrame(patterns) if patterns else pd.DataFrame(), hide_index=True, width="stretch")
if patterns and actor.can(Permission.CONTROL_SYSTEM):
    key = components.form_key("disable_pattern")
    with st.form(key):
        # Keyed by type and flag, not by place: the list is sorted by count, and a review flagged meanwhile
        # reordered it, so a remembered place disabled another agent type. The counts are in the table above.
        by_name = {(p["agent_type"], p["flag"]): p for p in patterns}
        choice = components.pick(st, "Pattern", {k: f"{k[0]} · {k[1]}" for k in by_name}, key=f"{key}_pattern",
                                 what="a pattern")
        reason = st.text_input("Reason (required)", key=f"{key}_reason")
        submitted = st.form_submit_button("Disable this agent type", type="primary")
    if submitted and choice is None:
        components.nothing_picked("a pattern", key=f"{key}_pattern")
    elif submitted:
        p = by_name[choice]
        evidence = {"queue": st.session_state.get("review_queue") or "all", "filter": f"flag={p['flag']}",
                    "flagged_with_it": p["conversations"]}
        disabled = components.act(lambda: rs.disable_agent_type_from_pattern(
            actor=actor, agent_type=p["agent_type"], evidence=evidence, reason=reason, uow=UnitOfWork()))
        if disabled:
            disabled.done(f"{p['agent_type']} is disabled everywhere; the evidence is in the audit log.",
                      reset=("disable_pattern",))
