"""Model providers: the official openai client for any OpenAI-compatible server, or an offline composer."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

import httpx2
import openai

from core.config import Settings

# USD per million tokens (prompt, completion); unknown models cost what the default, gpt-4o-mini, costs.
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-mini": (0.40, 1.60)}
DEFAULT_MODEL = "gpt-4o-mini"
MICRO_USD = Decimal("0.000001")


def cost_usd(model: str, *, prompt_tokens: int, completion_tokens: int) -> float:
    """What a call cost, from the price table (the one place prices live; the demo data uses it too), rounded half
    up to the micro-dollar the database keeps. In decimals: binary floats put half of the x.5 cases below the half."""
    p_in, p_out = PRICES.get(model, PRICES[DEFAULT_MODEL])
    exact = (prompt_tokens * Decimal(str(p_in)) + completion_tokens * Decimal(str(p_out))) / 1_000_000
    return float(exact.quantize(MICRO_USD, rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    provider: str
    model: str
    latency_ms: float

    @property
    def cost_usd(self) -> float:
        return cost_usd(self.model, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)


class Provider(Protocol):
    name: str

    def reply(self, *, system: str, user: str, fallback: str) -> Reply: ...

    async def areply(self, *, system: str, user: str, fallback: str) -> Reply: ...

    async def aclose(self) -> None: ...


class OpenAIProvider:
    """Chat completions through the official client; its own retries are off (one retry layer: ours).

    `reply` uses the threaded client; `areply` the asyncio one (the worker's event loop), made at its first call
    so that its connections belong to the loop that uses them.
    """

    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self.name = "openai"
        self._options = {
            "api_key": settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            "base_url": settings.openai_base_url, "max_retries": 0,
            "timeout": httpx2.Timeout(settings.agent_timeout_seconds, connect=min(5.0, settings.agent_timeout_seconds)),
        }
        self._client = openai.OpenAI(**self._options)
        self._aclient: openai.AsyncOpenAI | None = None

    def _request(self, system: str, user: str) -> dict:
        return {"model": self.model, "messages": [{"role": "system", "content": system},
                                                  {"role": "user", "content": user}],
                "max_tokens": 300, "temperature": 0.4}

    def reply(self, *, system: str, user: str, fallback: str) -> Reply:
        started = time.perf_counter()
        return self._to_reply(self._client.chat.completions.create(**self._request(system, user)), started)

    async def areply(self, *, system: str, user: str, fallback: str) -> Reply:
        """The same call through the asyncio client's own request path (auth, timeouts, HTTP errors as openai's
        exceptions), sending the body as the plain JSON it already is and reading the three fields we keep from
        the JSON answer: the typed-parameter transform and the response model cost more CPU than the call."""
        if self._aclient is None:
            self._aclient = openai.AsyncOpenAI(**self._options)
        started = time.perf_counter()
        resp = await self._aclient.post("/chat/completions", body=self._request(system, user), cast_to=httpx2.Response)
        data = json.loads(resp.content)  # a broken body raises JSONDecodeError, as the typed path does
        choices = data.get("choices") or []
        text = ((choices[0].get("message") or {}).get("content") or "").strip() if choices else ""
        if not text:
            raise openai.APIResponseValidationError(response=resp, body=data, message="the model returned an empty reply")
        usage = data.get("usage") or {}
        return Reply(text=text, prompt_tokens=usage.get("prompt_tokens") or 0,
                     completion_tokens=usage.get("completion_tokens") or 0, provider=self.name,
                     model=data.get("model") or self.model, latency_ms=(time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        """Close the asyncio client's connections (before its loop ends)."""
        if self._aclient is not None:
            client, self._aclient = self._aclient, None
            await client.close()

    def _to_reply(self, resp: object, started: float) -> Reply:
        text = (resp.choices[0].message.content or "").strip() if resp.choices else ""
        if not text:
            raise openai.APIResponseValidationError(response=httpx2.Response(200, request=httpx2.Request("POST", "/")),
                                                    body=None, message="the model returned an empty reply")
        usage = resp.usage
        return Reply(text=text, prompt_tokens=usage.prompt_tokens if usage else 0,
                     completion_tokens=usage.completion_tokens if usage else 0, provider=self.name,
                     model=resp.model or self.model, latency_ms=(time.perf_counter() - started) * 1000)


class OfflineProvider:
    """No API key (the embedded demo): the template's own message, marked provider=offline."""

    name = "offline"
    model = "template"

    def reply(self, *, system: str, user: str, fallback: str) -> Reply:
        started = time.perf_counter()
        return Reply(text=fallback, prompt_tokens=0, completion_tokens=0, provider=self.name, model=self.model,
                     latency_ms=(time.perf_counter() - started) * 1000)

    async def areply(self, *, system: str, user: str, fallback: str) -> Reply:
        return self.reply(system=system, user=user, fallback=fallback)

    async def aclose(self) -> None:
        """Nothing to close."""


def make_provider(settings: Settings) -> Provider:
    """OpenAI when a key is configured, else the offline composer."""
    return OpenAIProvider(settings) if settings.openai_api_key else OfflineProvider()
