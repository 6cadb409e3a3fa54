"""Small render helpers shared by the pages. Text from clients and models is rendered as text only."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import streamlit as st
from sqlalchemy.exc import OperationalError, ProgrammingError

from core.auth import Actor, Permission
from core.services.guard import record_refusal
from core.services.sessions import SignedIn
from core.uow import UnitOfWork

T = TypeVar("T")
ENV_COLOURS = {"production": "red", "staging": "orange", "development": "green"}
STATE_COLOURS = {"pass": "green", "warn": "orange", "fail": "red", "no data": "gray"}


def database_problem(exc: Exception) -> str:
    """One sentence saying what kind of database error happened."""
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ProgrammingError) or "no such table" in first or "does not exist" in first:
        return f"The database is not set up ({first}). Run `python -m core db setup`."
    return f"The database cannot be reached ({first})."


def with_database(fn: Callable[[], T], *, fallback: T) -> T:
    """Run FN; on a database error show a banner and return FALLBACK (the last good value)."""
    try:
        return fn()
    except (OperationalError, ProgrammingError) as exc:
        st.error(database_problem(exc), icon="🛑")
        if fallback is None:
            st.stop()
        return fallback


def identity_sidebar(signed: SignedIn, environment: str) -> None:
    """Who is signed in, as what, where: always visible."""
    colour = ENV_COLOURS.get(environment, "gray")
    st.sidebar.markdown(f":{colour}-background[**{environment.upper()}**]")
    st.sidebar.text(f"{signed.name} ({signed.actor.username})\nrole: {signed.actor.role.value}")
    if signed.actor.shop_ids is not None:
        st.sidebar.caption("shops: " + ", ".join(map(str, sorted(signed.actor.shop_ids))))


def page_guard(permission: Permission, page: str) -> Actor:
    """The acting user, or a refusal (audited) when their role may not open PAGE."""
    signed: SignedIn | None = st.session_state.get("agentops_signed_in")
    if signed is None:
        st.error("You are not signed in.")
        st.stop()
    if not signed.actor.can(permission):
        record_refusal(actor=signed.actor, action="page.open", target=page, uow=UnitOfWork(),
                       reason=f"role {signed.actor.role.value} may not open {page}")
        st.error(f"Your role ({signed.actor.role.value}) may not open {page}. This attempt has been recorded.")
        st.stop()
    return signed.actor


def fmt(value: float | None, unit: str, digits: int = 0) -> str:
    """A figure with its unit, or a dash when there is no data."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f} {unit}".strip()


def criterion_tile(column: Any, criterion: Any) -> None:
    """One success-criterion tile: value, threshold and state."""
    digits = 2 if criterion.unit == "%" else (1 if criterion.unit == "MB" else 0)
    goal = fmt(criterion.threshold, criterion.unit, digits)
    with column.container(border=True):
        st.metric(criterion.label, fmt(criterion.value, criterion.unit, digits),
                  help=f"Goal: below {goal} (the checklist's success criterion, from config).")
        colour = STATE_COLOURS[criterion.state]
        st.markdown(f":{colour}-badge[{criterion.state.upper()}] goal < {goal}")


@dataclass(frozen=True)
class Acted(Generic[T]):
    """What a page action came to: ok with the service's value, or the one sentence shown to the person."""

    ok: bool
    value: T | None = None
    error: str = ""

    def __bool__(self) -> bool:
        return self.ok


def act(fn: Callable[[], T]) -> Acted[T]:
    """Run a core service; a refusal, a conflict or bad input becomes one sentence on the page.

    The caller reruns only when the result is ok, so an error stays on screen until the person acts again.
    """
    from core.errors import AgentOpsError

    try:
        return Acted(True, fn())
    except AgentOpsError as exc:
        st.error(str(exc))
        return Acted(False, error=str(exc))


def live_fragment(*, run_every: float | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`st.fragment` for live panels that checks the server-side session on every run (house rule 9).

    A fragment rerun skips the app script, so without this a signed-out, disabled or demoted user's open
    tab would keep receiving data. When the session has ended, the whole app reruns and shows the sign-in.
    A database error inside the panel becomes one sentence instead of Streamlit's error box.
    """

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            from dashboard import context

            if not context.session_still_open():
                st.rerun(scope="app")
            try:
                fn(*args, **kwargs)
            except (OperationalError, ProgrammingError) as exc:
                st.warning(database_problem(exc), icon=":material/database_off:")

        return st.fragment(run, run_every=run_every)

    return decorate
