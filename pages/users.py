"""Users and API tokens (admins): add, change role, reset password, disable; issue and revoke tokens."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.auth import CONSOLE_ROLES, Permission, Role
from core.db import read_session
from core.queries.users import list_users
from core.services import tokens, users
from core.uow import UnitOfWork
from dashboard import components

actor = components.page_guard(Permission.MANAGE_USERS, "Users and tokens")
st.title("Users and tokens")
with read_session() as s:
    people = list_users(s, actor=actor)
st.dataframe(pd.DataFrame(people), hide_index=True, width="stretch")
ROLES = [r.value for r in (*CONSOLE_ROLES, Role.SHOP_OWNER, Role.ENTERPRISE_OWNER)]
names = [p["user"] for p in people]

add, change, token_tab = st.tabs(["Add a user", "Change a user", "API tokens"])
with add, st.form("add_user", clear_on_submit=True):
    username = st.text_input("User name")
    name = st.text_input("Display name")
    role = st.selectbox("Role", ROLES)
    shops = st.text_input("Shops (support and shop owners), e.g. 1,2")
    password = st.text_input("Initial password (10 characters or more)", type="password")
    if st.form_submit_button("Add user"):
        shop_ids = [int(x) for x in shops.split(",") if x.strip().isdigit()]
        if components.act(lambda: users.add_user(actor=actor, username=username, password=password, role=role,
                                                 name=name, shops=shop_ids, uow=UnitOfWork())):
            st.rerun()

with change:
    who = st.selectbox("User", names, key="change_user")
    cols = st.columns(3)
    new_role = cols[0].selectbox("New role", ROLES, key="change_role")
    if cols[0].button("Change role", key="do_role"):
        if components.act(lambda: users.set_role(actor=actor, username=who, role=new_role, uow=UnitOfWork())):
            st.success(f"{who} is now {new_role}; their sessions have ended.")
    new_password = cols[1].text_input("New password", type="password", key="change_pw")
    if cols[1].button("Set password", key="do_pw"):
        if components.act(lambda: users.set_password(actor=actor, username=who, password=new_password,
                                                     uow=UnitOfWork())):
            st.success(f"Password of {who} changed; their sessions have ended.")
    disabled = next((p["disabled"] for p in people if p["user"] == who), False)
    if cols[2].button("Enable" if disabled else "Disable", key="do_disable"):
        if components.act(lambda: users.set_disabled(actor=actor, username=who, disabled=not disabled,
                                                     uow=UnitOfWork())):
            st.rerun()

with token_tab:
    listed = components.act(lambda: tokens.list_tokens(actor=actor, uow=UnitOfWork())).value or []
    st.dataframe(pd.DataFrame(listed), hide_index=True, width="stretch")
    cols = st.columns(3)
    owner = cols[0].selectbox("Token for", names, key="token_user")
    days = cols[1].number_input("Expires in days", 1, 3650, 90, key="token_days")
    if cols[2].button("Issue token", key="do_token"):
        new = components.act(lambda: tokens.create_token(actor=actor, username=owner, expires_days=int(days),
                                                         uow=UnitOfWork()))
        if new:
            st.warning("Copy the token now; it is shown only this once and stored only as a hash.")
            st.code(new.value.token, language=None)
    active = [t["id"] for t in listed if t["state"] == "active"]
    revoke_id = st.selectbox("Revoke token", active, format_func=lambda i: f"token {i}", key="revoke_pick")
    if revoke_id and st.button("Revoke", key="do_revoke"):
        if components.act(lambda: tokens.revoke_token(actor=actor, token_id=revoke_id, uow=UnitOfWork())):
            st.rerun()
