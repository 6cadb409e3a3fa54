"""Users and API tokens (admins): add, change role, reset password, disable; issue and revoke tokens."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import CONSOLE_ROLES, Permission, Role
from core.db import read_session
from core.queries.users import list_users
from core.services import tokens, users
from core.uow import UnitOfWork
from dashboard import components, context, issued_tokens
from dashboard.components import act, form_key

actor = components.page_guard(Permission.MANAGE_USERS, "Users and tokens")
st.title("Users and tokens")
with read_session() as s:
    people = list_users(s, actor=actor)
st.dataframe(pd.DataFrame(people), hide_index=True, width="stretch")
ROLES = [r.value for r in (*CONSOLE_ROLES, Role.SHOP_OWNER, Role.ENTERPRISE_OWNER)]
names = [p["user"] for p in people]


def change_user(person: dict) -> None:
    """Role, password and access of PERSON, each checked against what this tab showed when it was clicked."""
    who, seen = person["user"], st.session_state.setdefault("users_seen_roles", {})
    drawn, seen[who] = seen.get(who), person["role"]  # the role on screen when the click was made, not read now
    cols = st.columns(3)
    key = f"{form_key('change_role')}_{who}"
    with cols[0].form(key):
        new_role = st.selectbox("New role", ROLES, index=ROLES.index(person["role"]) if person["role"] in ROLES
                                else 0, key=f"{key}_role")
        new_shops = st.text_input("Shops (support and shop owners; empty keeps the ones they have now, if any)",
                                  key=f"{key}_shops")
        if (st.form_submit_button("Change role") and (picked := components.parse_ids(new_shops, "Shops")) is not None
                and (changed := act(lambda: users.set_role(actor=actor, username=who, role=new_role,
                                                           shops=picked or None, uow=UnitOfWork(),
                                                           expected_role=drawn)))):
            changed.done(f"{who} is now {new_role}; their sessions have ended.", reset=("change_role",))
    with cols[1].form(form_key("set_password")):
        new_password = st.text_input("New password", type="password", key=f"{form_key('set_password')}_pw")
        if st.form_submit_button("Set password") and (changed := act(
                lambda: users.set_password(actor=actor, username=who, password=new_password, uow=UnitOfWork()))):
            changed.done(f"Password of {who} changed; their sessions have ended.", reset=("set_password",))
    components.intent_button(cols[2], "Enable" if person["disabled"] else "Disable", key="do_disable",
                             intent="disable", value=(who, not person["disabled"]))
    if (intent := components.clicked("disable")) is not None:
        target_user, target = intent
        state = "disabled" if target else "enabled"
        changed = act(lambda: users.set_disabled(actor=actor, username=target_user, disabled=target, uow=UnitOfWork()))
        if changed and changed.value:
            changed.done(f"{target_user} is {state}.", reset=("disable",))
        elif changed:
            st.info(f"{target_user} is already {state} (someone else did it meanwhile); nothing changed.")


add, change, token_tab = st.tabs(["Add a user", "Change a user", "API tokens"])
with add:
    key = form_key("add_user")
    with st.form(key):  # keeps its values after an error; emptied only once the user exists
        username = st.text_input("User name", key=f"{key}_username")
        name = st.text_input("Display name", key=f"{key}_name")
        role = st.selectbox("Role", ROLES, key=f"{key}_role")
        shops = st.text_input("Shops (support and shop owners), e.g. 1,2", key=f"{key}_shops")
        password = st.text_input("Initial password (10 characters or more)", type="password", key=f"{key}_password")
        submitted = st.form_submit_button("Add user")
    if submitted and (shop_ids := components.parse_ids(shops, "Shops")) is not None:
        if added := act(lambda: users.add_user(actor=actor, username=username, password=password, role=role,
                                               name=name, shops=shop_ids, uow=UnitOfWork())):
            added.done(f"{username} added as {role}.", reset=("add_user",))

with change:
    # Nobody is chosen at first: the first name in the list was, and one click on Disable acted on it.
    who = st.selectbox("User", names, key="change_user", index=None, placeholder="Choose a user")
    person = next((p for p in people if p["user"] == who), None)
    if person is None:
        st.caption("Choose a user to change their role, password or access.")
    else:
        change_user(person)

with token_tab:
    listed = act(lambda: tokens.list_tokens(actor=actor, uow=UnitOfWork())).value or []
    st.dataframe(pd.DataFrame(listed), hide_index=True, width="stretch")
    # The token just issued stays on screen, in place of the form, until its issuer says it is copied: a second
    # click that lands while the first one's run is under way then finds no form to submit (it used to issue a
    # second token, and the first was never shown), and no rerun can take the token off screen unread. It is held
    # in this process's memory under the console session, not in st.session_state, so a reload shows it again
    # (see dashboard/issued_tokens.py). The session's id is read before the service runs and the token kept right
    # after it, with no st call between: Streamlit may stop a run for a newer click at any st call, and a run
    # stopped between the commit and the keeping lost the token while the replayed click issued a second one.
    session_id = context.console_session_id()
    if shown := issued_tokens.held(session_id=session_id, issuer=actor.username):
        st.warning(f"Copy the token now: it is stored only as a hash. It stays here, reloads included, until you "
                   f"mark it copied or sign out, and for {issued_tokens.LIFETIME_SECONDS // 60} minutes at most; "
                   f"after that it cannot be shown again.")
        st.code(shown, language=None)
        if st.button("I have copied it", key="token_copied"):
            issued_tokens.drop(session_id)
            st.rerun()
    else:
        with st.form("issue_token"):
            cols = st.columns(2)
            owner = cols[0].selectbox("Token for", names, key="token_user")
            # No bounds on the box: the browser held back 5000 without a word; the service says 1 to 3650.
            # A decimal box, so that 1.5 reaches the service and is refused there: a whole-number box cut it to 1
            # in the browser (it reads what is typed with parseInt), and int() did the same here.
            days = cols[1].number_input("Expires in days", value=90.0, step=1.0, format="%g", key="token_days")
            issued = st.form_submit_button("Issue token")
        if issued and (new := act(lambda: tokens.create_token(actor=actor, username=owner,
                                                              expires_days=days, uow=UnitOfWork()))):
            issued_tokens.keep(session_id=session_id, issuer=actor.username, token=new.value.token)
            st.rerun()  # the list above and the revoke choice below then hold the new token
    active = {t["id"]: f"token {t['id']} ({t['user']})" for t in listed if t["state"] == "active"}
    revoke_id = components.pick(st, "Revoke token", active, key="revoke_pick", what="a token", in_form=False)
    if st.button("Revoke", key="do_revoke"):  # never disabled: a click whose token just went must be answered
        if revoke_id is None:
            components.nothing_picked("a token", key="revoke_pick")
        elif revoked := act(lambda: tokens.revoke_token(actor=actor, token_id=revoke_id, uow=UnitOfWork())):
            revoked.done(f"Token {revoke_id} revoked.", reset=("revoke",))
