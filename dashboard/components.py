"""Small render helpers shared by the pages. Text from clients and models is rendered as text only."""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeVar

import streamlit as st
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from core.auth import Actor, Permission
from core.errors import describe_database_error
from core.queries.health import WARN_AT
from core.services.guard import record_refusal
from core.services.sessions import SignedIn
from core.uow import UnitOfWork

T = TypeVar("T")
ENV_COLOURS = {"production": "red", "staging": "orange", "development": "green"}
STATE_COLOURS = {"pass": "green", "warn": "orange", "fail": "red", "no data": "gray"}


# What a missing table or an unreachable database raises, on PostgreSQL and SQLite.
DATABASE_ERRORS = (OperationalError, ProgrammingError, InterfaceError)
# Where this run stands, for showing the database banner once: a full run draws the whole page; a fragment-only
# run redraws one live panel and leaves the rest of the page (and a banner drawn outside the panel) as it was.
FULL_RUN, IN_PANEL, SHOWN, SHOWN_OUTSIDE_PANELS = "_run_full", "_run_in_panel", "_banner_shown", "_banner_outside"


def database_problem(exc: Exception) -> str:
    """One sentence saying what happened to the database and the way back."""
    return describe_database_error(exc)


def start_run() -> None:
    """Called at the top of every full run of the app: no database banner has been shown in it yet."""
    st.session_state.update({FULL_RUN: True, IN_PANEL: False, SHOWN: False, SHOWN_OUTSIDE_PANELS: False})
    if kept := _after()["keep"]:  # what the last action that went through left (Acted.done)
        st.session_state.update(kept)
        kept.clear()


def end_run() -> None:
    """Called when a full run ends (however it ends): later runs are fragment-only until start_run()."""
    st.session_state[FULL_RUN] = False


def database_banner(exc: Exception) -> None:
    """Show the database problem once on the screen, however many reads of this run meet it."""
    state = st.session_state
    already = state.get(SHOWN) if state.get(FULL_RUN) else state.get(SHOWN_OUTSIDE_PANELS)
    if already:
        return
    st.error(database_problem(exc), icon=":material/database_off:")
    state[SHOWN] = True
    if not state.get(IN_PANEL):
        state[SHOWN_OUTSIDE_PANELS] = True


def with_database(fn: Callable[[], T], *, fallback: T) -> T:
    """Run FN; on a database error show the banner (once) and return FALLBACK (e.g. the last good value)."""
    try:
        return fn()
    except DATABASE_ERRORS as exc:
        database_banner(exc)
        return fallback


def read(query: Callable[..., T], **kwargs: Any) -> T:
    """QUERY(session, **KWARGS) in a read session of its own."""
    from core.db import read_session

    with read_session() as session:
        return query(session, **kwargs)


def run_page(page: Any) -> None:
    """Run the chosen page; a missing table or a database that is down ends it with one sentence, not a traceback."""
    show_flash()
    try:
        page.run()
    except DATABASE_ERRORS as exc:
        database_banner(exc)


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
        from dashboard.navigation import links_for

        st.caption("Pages you can open:")
        links_for(signed.actor)
        st.stop()
    return signed.actor


def parse_ids(text: str, field: str) -> list[int] | None:
    """'1, 2' → [1, 2]; anything else is one sentence on the page and None."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        st.error(plain_md(f"{field} must be numbers separated by commas, such as 1,2 (got {text!r})."))
        return None
    return [int(p) for p in parts]


def show_flash() -> None:
    """The sentence an action left for this run (Acted.done), if any, as a toast."""
    after = _after()
    if sentence := after["flash"]:
        after["flash"] = None
        st.toast(sentence, icon=":material/check_circle:")


def fmt(value: float | None, unit: str, digits: int = 0) -> str:
    """A figure with its unit, or a dash when there is no data."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f} {unit}".strip()


# What a tile's figure is computed from, where its label alone does not say.
CRITERION_MEANING = {
    "error_rate": "Failed ÷ (completed + failed) among the conversations created in the window; open ones and "
                  "opt-outs do not count.",
    "response_p95": "95th percentile of the completed conversations' reply times, from 5 %-wide histogram buckets "
                    "(good to about 2.5 %).",
}


def criterion_tile(column: Any, criterion: Any) -> None:
    """One success-criterion tile: value, threshold and state."""
    digits = 2 if criterion.unit == "%" else (1 if criterion.unit == "MB" else 0)
    goal = fmt(criterion.threshold, criterion.unit, digits)
    warn = fmt(WARN_AT * criterion.threshold, criterion.unit, digits)  # where judge() starts to warn
    meaning = CRITERION_MEANING.get(criterion.key, "")
    with column.container(border=True):
        st.metric(criterion.label, fmt(criterion.value, criterion.unit, digits),
                  help=f"{meaning} Goal: below {goal}; WARN from {warn} ({WARN_AT * 100:g} % of the goal), FAIL at "
                       f"{goal} or above (the checklist's success criterion, from config).".strip())
        colour = STATE_COLOURS[criterion.state]
        st.markdown(f":{colour}-badge[{criterion.state.upper()}] goal < {goal}")


# What actions that went through leave for the runs after them: a sentence to say once, each form's generation
# (see form_key), session values to set at the start of the next full run. One plain dict per session.
_AFTER = "_after_action"


def _after() -> dict[str, Any]:
    return st.session_state.setdefault(_AFTER, {"flash": None, "forms": {}, "keep": {}})


@dataclass(frozen=True)
class Acted(Generic[T]):
    """What a page action came to: ok with the service's value, or the one sentence shown to the person."""

    ok: bool
    value: T | None = None
    error: str = ""
    after: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.ok

    def done(self, sentence: str | None = None, *, reset: tuple[str, ...] = (),
             keep: dict[str, Any] | None = None) -> NoReturn:
        """The action went through: say SENTENCE, draw the forms named in RESET afresh, set KEEP in the session,
        and draw the page again.

        Every `st.*` call and every read or write of st.session_state is a point where Streamlit may stop this run
        for a newer click. A run stopped between the commit and those writes lost the sentence and left the form
        filled in, inviting the same action again; so they go to a plain dict that `act` fetched before the
        action ran, and the next full run, whichever click started it, finds them there."""
        if sentence:
            self.after["flash"] = sentence
        for name in reset:
            _next_generation(self.after["forms"], name)
        self.after["keep"].update(keep or {})
        st.rerun()


# What can turn text into a link, emphasis, code, a colour or LaTeX directive, or an HTML tag. Parentheses, dots,
# dashes and colons stay as they are (without brackets they build no link or directive), so sentences read the same
# in tests and logs; only the autolinks' `://` and `www.` are broken up.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>~$|])")


def visible_in_table(df: Any) -> Any:
    """DF (a pandas DataFrame) with the direction controls of its text cells made visible: a reason or comment with
    a right-to-left override must not reorder what a table shows."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    from core.text import visible_controls

    for col in df.columns:
        if is_object_dtype(df[col]) or is_string_dtype(df[col]):
            df[col] = df[col].map(lambda v: visible_controls(v) if isinstance(v, str) else v)
    return df


def plain_md(text: str) -> str:
    """TEXT for Streamlit's markdown-rendering elements (st.error, st.success…), escaped so that a name or reason
    typed by someone shows literally: no link (autolinks included), no emphasis, colour, LaTeX or tag."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text).replace("www.", "www\\.").replace("://", "\\://")


_PICKS = "_picks"  # a pick's key → (the options it drew last, its value then, the labels gone since the run before)


def act(fn: Callable[[], T]) -> Acted[T]:
    """Run a core service; a refusal, a conflict or bad input becomes one sentence on the page.

    The caller reruns only when the result is ok, so an error stays on screen until the person acts again.
    """
    from core.errors import AgentOpsError

    after = _after()  # before the action: see Acted.done
    try:
        return Acted(True, fn(), after=after)
    except AgentOpsError as exc:
        st.error(plain_md(str(exc)))  # errors may echo what a person typed (house rule 5)
        return Acted(False, error=str(exc), after=after)


def pick(where: Any, label: str, options: dict[Any, str], *, key: str, what: str, in_form: bool = True) -> Any:
    """A choice of one of OPTIONS (value → label) that starts empty and comes back empty (None) when the chosen
    one has left the list since the page was drawn.

    Streamlit puts a choice it no longer finds among the options back to the default, the first option unless
    there is none: a form submitted after someone else removed the chosen rule removed the first rule instead.
    Labels should name the thing (not its state), so that only a thing that is gone empties the choice."""
    value = where.selectbox(label, list(options), index=None, format_func=lambda v: options.get(v, str(v)), key=key,
                            placeholder=f"Choose {what}")
    # What was drawn last time tells `nothing_picked` what left the list since the person saw it. Outside a form
    # each choice reruns the page, so the one chosen is known; inside one it reaches the page only with the
    # submit, emptied alike whether nothing was chosen or the chosen one has gone: every option gone is named.
    drawn = st.session_state.setdefault(_PICKS, {})
    before, chosen, _ = drawn.get(key, ({}, None, []))
    if chosen is not None or not in_form:
        gone = [before[chosen]] if chosen is not None and chosen not in options else []
    else:
        gone = [label for v, label in before.items() if v not in options]
    drawn[key] = (dict(options), value, gone)
    return value


def intent_button(where: Any, label: str, *, key: str, intent: str, value: Any) -> None:
    """A button whose click carries VALUE as it was when the button was drawn (Streamlit calls the callback with
    that run's args); `clicked(INTENT)` hands it over on the rerun, even when the page no longer draws the button.
    A click on "Disable" drawn before someone else disabled the user re-enabled them; an Approve whose run another
    engineer had approved meanwhile was dropped without a word."""
    where.button(label, key=key, on_click=_remember_click, args=(intent, value))


def clicked(intent: str) -> Any:
    """The value of the INTENT button clicked in this rerun (see intent_button), or None."""
    return st.session_state.pop(f"_clicked_{intent}", None)


def _remember_click(intent: str, value: Any) -> None:
    st.session_state[f"_clicked_{intent}"] = value


def nothing_picked(what: str, *, key: str) -> None:
    """The sentence for an action submitted without a choice, naming what left the list (drawn by `pick` under
    KEY) since the person saw it."""
    if gone := st.session_state.get(_PICKS, {}).get(key, ({}, None, []))[2]:
        st.error(f"Since the list was drawn, {plain_md(', '.join(gone))} left it (someone else acted on it): "
                 f"choose {what}.")
    else:
        st.error(f"Choose {what} first.")


def form_key(name: str) -> str:
    """The key of form NAME in its current generation; widgets in it derive their keys from this one."""
    return f"{name}_{_after()['forms'].get(name, 0)}"


def reset_form(name: str) -> None:
    """The next run draws form NAME afresh, its reason box empty (after an action, Acted.done(reset=…) does it).

    `clear_on_submit` would also wipe the form after an error; a new generation clears it only on success."""
    _next_generation(_after()["forms"], name)


def _next_generation(forms: dict[str, int], name: str) -> None:
    forms[name] = forms.get(name, 0) + 1


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

            st.session_state[IN_PANEL] = True
            try:
                if not context.session_still_open():
                    st.rerun(scope="app")
                fn(*args, **kwargs)
            except DATABASE_ERRORS as exc:
                database_banner(exc)
            finally:
                st.session_state[IN_PANEL] = False

        return st.fragment(run, run_every=run_every)

    return decorate
