"""The price table's cost per call, rounded as the database keeps it (to the micro-dollar, half up)."""
from __future__ import annotations

from core.llm import cost_usd


def test_a_cost_exactly_on_the_half_rounds_up() -> None:
    # 150 × $0.15 + 45 × $0.60 per million tokens = $0.0000495 exactly: binary floats made it $0.000049.
    assert cost_usd("gpt-4o-mini", prompt_tokens=150, completion_tokens=45) == 0.00005


def test_unknown_models_cost_what_the_default_costs() -> None:
    assert cost_usd("some-new-model", prompt_tokens=1_000_000, completion_tokens=0) == 0.15
    assert cost_usd("gpt-4o", prompt_tokens=1000, completion_tokens=1000) == 0.0125
