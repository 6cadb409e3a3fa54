"""Checklist: the staging checklist, live, for this environment and a release: run, tick, waive, sign off, export."""
from __future__ import annotations

import streamlit as st

from core.auth import Permission
from core.checklist.catalogue import ITEMS
from core.checklist.report import to_json, to_markdown
from core.config import get_settings
from core.db import read_session
from core.queries.checklist import find_run, get_run_state, list_runs
from core.services import checklist as svc
from core.uow import UnitOfWork
from dashboard import checklist_widgets as w
from dashboard import components

actor = components.page_guard(Permission.VIEW_HEALTH, "Checklist")
settings = get_settings()
env, can_act = settings.environment, actor.can(Permission.CHECKLIST)
st.title("Checklist")
release = st.text_input("Release", value=settings.release_id, key="checklist_release",
                        help="One run per environment and release; RELEASE_ID is this deployment's.").strip()
st.caption(f"Environment: {env}. " + ("You can run, tick, waive and sign off." if can_act else
                                       "You can view; engineers and admins run, tick, waive and sign off."))
with read_session() as s:
    row = find_run(s, actor=actor, environment=env, release=release)
    others = list_runs(s, actor=actor)
with st.expander(f"Runs (the {len(others)} most recent)" if others else "Runs (none yet)"):
    st.dataframe(others, hide_index=True, width="stretch")

if row is None:
    st.info("No checklist run for this environment and release yet.")
    st.text(f"environment: {env}\nrelease: {release}")  # typed by a person: text, never markdown
    if can_act:
        with st.form(components.form_key("checklist_start")):
            if st.form_submit_button("Start the checklist for this release", type="primary") and components.act(
                    lambda: svc.start_run(actor=actor, uow=UnitOfWork(), release=release)):
                st.rerun()
    st.stop()

run_id = row.id
with read_session() as s:
    run = get_run_state(s, actor=actor, run_id=run_id)
w.verdict(run)

if can_act:
    automated = sum(i.automated for i in ITEMS)
    left, middle, right = st.columns(3)
    with left, st.form(components.form_key("checklist_run_all")):
        # Said before the click: the run changes the live system for a moment, and people watching the agents
        # should not learn it from the sidebar turning STOPPED.
        limit = get_settings().checklist_item_timeout_seconds
        st.caption(f"Runs the {automated} automated checks. Among them, the kill-switch dry run switches the agent "
                   f"system off until every live worker acknowledges (at most {limit:g} s), then puts it back as it "
                   "was; a synthetic conversation is run and removed.")
        confirm = st.text_input("Type 'production' to allow the kill-switch dry run") if env == "production" else None
        if st.form_submit_button("Run all automated checks", type="primary"):
            w.run_all_with_progress(lambda on_result: svc.run_checks(
                actor=actor, run_id=run_id, uow=UnitOfWork(), confirm=confirm, on_result=on_result), automated)
    with middle, st.form(components.form_key("checklist_deployed")):
        st.caption("Deployed: " + (f"{run.deployed_at:%Y-%m-%d %H:%M} UTC" if run.deployed_at else "not marked"))
        if st.form_submit_button("Mark the release deployed now") and (marked := components.act(
                lambda: svc.mark_deployed(actor=actor, run_id=run_id, uow=UnitOfWork()))):
            marked.done()
    with right, st.form(components.form_key("checklist_sign_off")):
        note = st.text_input("Sign-off note", key="checklist_sign_off_note")
        if st.form_submit_button("Sign off", disabled=bool(run.signed_off_by)) and (signed := components.act(
                lambda: svc.sign_off(actor=actor, run_id=run_id, note=note, uow=UnitOfWork()))):
            signed.done("Signed off.")

    st.subheader("One item")
    if (form := w.item_form(can_act)) is not None:
        item_id, text = form["item"], form["text"]
        do = {"run": lambda: svc.run_checks(actor=actor, run_id=run_id, uow=UnitOfWork(), item_id=item_id),
              "tick": lambda: svc.tick_item(actor=actor, run_id=run_id, item_id=item_id, note=text, uow=UnitOfWork()),
              "waive": lambda: svc.waive_item(actor=actor, run_id=run_id, item_id=item_id, reason=text,
                                              uow=UnitOfWork())}[form["action"]]
        if recorded := components.act(do):
            recorded.done(f"{item_id}: {form['action']} recorded.", reset=("checklist_item",))

md, js = to_markdown(run), to_json(run)
left, right = st.columns(2)
left.download_button("Export Markdown report", md, file_name=f"checklist-{env}-{release}.md", mime="text/markdown")
right.download_button("Export JSON", js, file_name=f"checklist-{env}-{release}.json", mime="application/json")
w.sections(run)
st.subheader("Evidence")
w.evidence_viewer(run)
st.subheader("Emergency contacts")
st.dataframe([{"role": k, "contact": v} for k, v in settings.emergency_contacts().items()], hide_index=True)
