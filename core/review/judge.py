"""The judge: pre-scores a conversation on the review schema, through the same openai client and breaker as the
agents (JUDGE_MODEL, rubric in judge_rubric.txt). Without an API key a deterministic heuristic scores instead,
marked provider "offline-heuristic", so nobody mistakes it for a model's opinion."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai

from core.breaker import CircuitBreaker
from core.config import Settings

RUBRIC_FILE = Path(__file__).parent / "judge_rubric.txt"
HEURISTIC = "offline-heuristic"


@dataclass(frozen=True)
class Verdict:
    rating: float
    flags: list[str] = field(default_factory=list)
    rationale: str = ""
    provider: str = HEURISTIC
    model: str = "heuristic-v1"


class JudgeUnavailable(Exception):
    """The judge's provider failed or its breaker is open; the conversation stays unscored for now."""


def rubric(settings: Settings) -> str:
    """The rubric with the score schema from config filled in."""
    return RUBRIC_FILE.read_text(encoding="utf-8").format(
        rating_min=settings.review_rating_min, rating_max=settings.review_rating_max,
        flags=", ".join(settings.review_flag_names()))


def transcript_text(conv: dict[str, Any]) -> str:
    """What the judge reads: status, error and each message with its role."""
    lines = [f"agent type: {conv['agent_type']}; status: {conv['status']}; error: {conv.get('error') or 'none'}"]
    lines += [f"[{m['role']}] {m['content']}" for m in conv["messages"]]
    return "\n".join(lines)


class Judge:
    """Scores conversations with the model when a key is configured, else with the offline heuristic."""

    def __init__(self, settings: Settings, breaker: CircuitBreaker | None = None) -> None:
        self.settings = settings
        self.breaker = breaker or CircuitBreaker(name="judge", failure_threshold=settings.breaker_failure_threshold,
                                                 reset_seconds=settings.breaker_reset_seconds)
        self._client = None
        if settings.openai_api_key:
            self._client = openai.OpenAI(
                api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url, max_retries=0,
                timeout=httpx2.Timeout(settings.agent_timeout_seconds, connect=min(5.0, settings.agent_timeout_seconds)))

    @property
    def provider(self) -> str:
        return "openai" if self._client else HEURISTIC

    def score(self, conv: dict[str, Any]) -> Verdict:
        """The verdict on CONV (a transcript dict); JudgeUnavailable when the model cannot be asked."""
        if self._client is None:
            return heuristic(conv, self.settings)
        if not self.breaker.allow():
            raise JudgeUnavailable("the judge's breaker is open")
        try:
            verdict = self._ask(conv)
        except (openai.APIError, ValueError, KeyError, TypeError) as exc:
            self.breaker.record_failure()
            raise JudgeUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        self.breaker.record_success()
        return verdict

    def _ask(self, conv: dict[str, Any]) -> Verdict:
        started = time.perf_counter()
        resp = self._client.chat.completions.create(
            model=self.settings.judge_model, temperature=0, max_tokens=200,
            messages=[{"role": "system", "content": rubric(self.settings)},
                      {"role": "user", "content": transcript_text(conv)}])
        data = json.loads((resp.choices[0].message.content or "").strip().strip("`").removeprefix("json"))
        s = self.settings
        rating = min(max(float(data["rating"]), s.review_rating_min), s.review_rating_max)
        flags = [f for f in data.get("flags", []) if f in s.review_flag_names()]
        why = str(data.get("rationale", ""))[:500] + f" ({(time.perf_counter() - started) * 1000:.0f} ms)"
        return Verdict(rating, flags, why, "openai", resp.model or s.judge_model)


def heuristic(conv: dict[str, Any], settings: Settings) -> Verdict:
    """A deterministic score from the conversation's outcome and words (no model): marked as such."""
    client_text = " ".join(m["content"].lower() for m in conv["messages"] if m["role"] == "client")
    agent_after_stop = _agent_after_stop(conv["messages"])
    rating, flags, why = float(settings.review_rating_max), [], "no problem signals"
    if conv["status"] == "failed":
        rating, why = float(settings.review_rating_min), "the conversation failed"
    elif agent_after_stop:
        rating, flags, why = float(settings.review_rating_min), ["opt_out_ignored"], "the agent wrote after STOP"
    elif any(k in client_text for k in settings.complaint_keywords()):
        rating, flags, why = 2.0, ["tone"], "the client complained"
    elif not any(m["role"] == "client" for m in conv["messages"]):
        rating, why = 4.0, "no reply from the client"
    return Verdict(rating, flags, f"heuristic: {why}")


def _agent_after_stop(messages: list[dict[str, Any]]) -> bool:
    stopped = False
    for m in messages:
        if m["role"] == "client" and m["content"].strip().upper() in ("STOP", "UNSUBSCRIBE", "STOP ALL"):
            stopped = True
        elif m["role"] == "agent" and stopped:
            return True
    return False
