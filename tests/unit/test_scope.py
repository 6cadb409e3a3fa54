"""The one scope rule (ActivationState.scope): what the worker claims and what `allows` answers agree."""
from __future__ import annotations

import pytest

from core.queries.settings import ActivationState, Scope, shop_in_percent

SHOPS = range(1, 41)
TYPES = ("rebooking", "upsell", "custom")


def _state(**kw: object) -> ActivationState:
    return ActivationState(version=2, **{"mode": "limited", **kw})


@pytest.mark.parametrize("state, expected", [
    (_state(mode="off"), Scope(shops=frozenset())),
    (_state(mode="full", env_enabled=False), Scope(shops=frozenset())),
    (_state(mode="full", disabled_agent_types=("upsell",)), Scope(disabled_agent_types=frozenset({"upsell"}))),
    (_state(allowed_shops=(3, 4), allowed_agent_types=("custom",)),
     Scope(shops=frozenset({3, 4}), agent_types=frozenset({"custom"}))),
    (_state(), Scope(shops=frozenset())),  # limited with nothing listed allows nothing, not everything
    (_state(shop_percent=30, allowed_shops=(2,)),
     Scope(shops=frozenset({2} | {s for s in SHOPS if shop_in_percent(s, 30)}))),
])
def test_scope_of_each_mode(state: ActivationState, expected: Scope) -> None:
    assert state.scope(shop_ids=SHOPS) == expected


def test_allows_is_the_scope_rule_shop_by_shop() -> None:
    state = _state(shop_percent=50, allowed_shops=(7,), disabled_agent_types=("upsell",))
    scope = state.scope(shop_ids=SHOPS)
    assert 0 < len(scope.shops) < len(SHOPS)
    for shop in SHOPS:
        for agent_type in TYPES:
            assert state.allows(shop_id=shop, agent_type=agent_type) is scope.allows(shop_id=shop,
                                                                                     agent_type=agent_type)
