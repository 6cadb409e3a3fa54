"""The histogram the dashboards read p95 from is accurate within its resolution."""
from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from core.rollups import BUCKET_RATIO, bucket_of, bucket_value, percentile


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_p95_from_buckets_is_within_resolution(seed: int) -> None:
    rng = random.Random(seed)
    values = [max(1, int(rng.lognormvariate(math.log(800), 0.6))) for _ in range(5000)]
    exact = sorted(values)[math.ceil(0.95 * len(values)) - 1]
    approx = percentile(Counter(bucket_of(v) for v in values), 0.95)
    assert abs(approx - exact) / exact <= math.sqrt(BUCKET_RATIO) - 1 + 1e-9


def test_bucket_bounds_contain_their_values() -> None:
    for ms in (1, 2, 99, 100, 101, 1999, 2000, 30000):
        b = bucket_of(ms)
        assert BUCKET_RATIO ** b <= ms < BUCKET_RATIO ** (b + 1) or ms == 1
        assert abs(bucket_value(b) - ms) / ms < 0.05


def test_empty_histogram_has_no_percentile() -> None:
    assert percentile({}, 0.95) is None
