"""Stored histograms joined as text (string_agg / group_concat) add up to exactly what decoding each one gives,
whichever way the database wrote the JSON; text the fast path does not expect takes the exact path or fails loudly."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from core.rollups_compact import decode, encode, sum_stored, sum_stored_by_key


def _forms(counts: dict[int, int]) -> list[str]:
    """One histogram as the ORM (json.dumps), SQLite's json_group_object and PostgreSQL's json_object_agg write it."""
    stored = encode(counts)
    pg = "{ " + ", ".join(f'"{b}" : {n}' for b, n in stored.items()) + " }"
    return [json.dumps(stored), json.dumps(stored, separators=(",", ":")), pg]


def _by_decoding(texts: list[str]) -> dict[int, int]:
    total: Counter[int] = Counter()
    for t in texts:
        total.update(decode(json.loads(t)))
    return dict(total)


def test_a_month_of_histograms_sums_to_what_decoding_each_gives() -> None:
    rng = random.Random(11)
    texts = []
    for _ in range(400):
        low = rng.randint(60, 140)
        counts = {b: rng.randint(1, 900) for b in range(low, low + rng.randint(1, 60)) if rng.random() < 0.8}
        texts.append(rng.choice(_forms(counts)))
    texts.append("{}")
    expected = _by_decoding(texts)
    assert len(expected) > 50 and sum(expected.values()) > 1_000_000
    assert sum_stored(" ".join(texts)) == expected


def test_nothing_stored_is_an_empty_histogram() -> None:
    assert sum_stored(None) == {} and sum_stored("") == {} and sum_stored("{} {}") == {}


def test_counts_past_32_bits_stay_exact() -> None:
    assert sum_stored('{"3": 4000000000} {"3": 4000000001}') == {3: 8_000_000_001}


@pytest.mark.parametrize("text, expected", [
    ('{"2": 5} {"-1": 3}', {2: 5, -1: 3}),  # a bucket below 0: not ours, still added exactly
    ('{"20000": 1} {"2": 1}', {20000: 1, 2: 1}),  # far past any bucket_of: no 20,000-slot array
    ('{"2": 5} {"2": -5} {"4": 1}', {4: 1}),  # a correction to zero leaves no empty bucket
])
def test_text_the_fast_path_does_not_expect_is_added_exactly(text: str, expected: dict[int, int]) -> None:
    assert sum_stored(text) == expected


@pytest.mark.parametrize("text", ['{"2": 5} {"3": "x"}', '{"2": 5} {"3": 1.5}', '{"2": 5} trailing'])
def test_a_histogram_that_is_not_bucket_to_count_raises(text: str) -> None:
    with pytest.raises(ValueError):
        sum_stored(text)


def test_histograms_of_many_keys_sum_per_key_in_one_pass() -> None:
    """A breakdown's rows: a shop's daily and hourly histograms come as two rows of the same key."""
    rng = random.Random(5)
    rows, texts_of = [], {}
    for key in [f"shop {n}" for n in range(30)] * 2:
        texts = [rng.choice(_forms({b: rng.randint(1, 50) for b in range(rng.randint(80, 100), 120)}))
                 for _ in range(rng.randint(1, 20))]
        rows.append((key, " ".join(texts)))
        texts_of.setdefault(key, []).extend(texts)
    rows += [("no completions", None), ("all corrected away", '{"7": 2} {"7": -2}')]
    summed = sum_stored_by_key(rows)
    assert summed == {**{k: _by_decoding(t) for k, t in texts_of.items()},
                      "no completions": {}, "all corrected away": {}}


def test_one_keys_unexpected_text_leaves_every_key_exact() -> None:
    rows = [("a", '{"2": 5} {"2": 1}'), ("b", '{"-1": 3}'), ("a", '{"9": 1}')]
    assert sum_stored_by_key(rows) == {"a": {2: 6, 9: 1}, "b": {-1: 3}}
