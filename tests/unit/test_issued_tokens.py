"""The console's memory of a just-issued API token: one per console session, for a bounded time, with an injected
clock (no sleeps)."""
from __future__ import annotations

from dashboard import issued_tokens
from dashboard.issued_tokens import LIFETIME_SECONDS


def test_held_for_its_issuer_until_dropped() -> None:
    issued_tokens.keep(session_id="s-drop", issuer="ann", token="bbat_one")
    assert issued_tokens.held(session_id="s-drop", issuer="ann") == "bbat_one"
    assert issued_tokens.held(session_id="s-drop", issuer="bob") is None  # only its issuer sees it
    assert issued_tokens.held(session_id="s-other", issuer="ann") is None  # and only in the session it was issued in
    issued_tokens.drop("s-drop")
    assert issued_tokens.held(session_id="s-drop", issuer="ann") is None
    issued_tokens.drop("s-drop")  # a second "I have copied it" is no error


def test_only_the_last_token_of_a_session_is_held() -> None:
    issued_tokens.keep(session_id="s-last", issuer="ann", token="bbat_first")
    issued_tokens.keep(session_id="s-last", issuer="ann", token="bbat_second")
    assert issued_tokens.held(session_id="s-last", issuer="ann") == "bbat_second"
    issued_tokens.drop("s-last")


def test_gone_once_its_time_is_up_and_forgotten_then() -> None:
    now = [1000.0]

    def clock() -> float:
        return now[0]

    issued_tokens.keep(session_id="s-time", issuer="ann", token="bbat_late", clock=clock)
    now[0] += LIFETIME_SECONDS - 1
    assert issued_tokens.held(session_id="s-time", issuer="ann", clock=clock) == "bbat_late"
    now[0] += 1
    assert issued_tokens.held(session_id="s-time", issuer="ann", clock=clock) is None
    assert "s-time" not in issued_tokens._held  # not kept in memory past its time
