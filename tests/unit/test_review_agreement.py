"""Cohen's kappa, as the review page shows it per queue and for the judge against people."""
from __future__ import annotations

import pytest

from core.queries.review_stats import cohen_kappa


def test_perfect_agreement_is_one_and_chance_agreement_is_zero() -> None:
    assert cohen_kappa([(1, 1), (2, 2), (3, 3)]) == 1
    assert cohen_kappa([(1, 1), (2, 2), (1, 2), (2, 1)]) == 0


def test_a_textbook_case() -> None:
    # 50 items: both yes 20, both no 15, A yes B no 5, A no B yes 10 → po 0.7, pe 0.5 → kappa 0.4
    pairs = [(True, True)] * 20 + [(False, False)] * 15 + [(True, False)] * 5 + [(False, True)] * 10
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_undefined_without_pairs_or_with_one_label_only() -> None:
    assert cohen_kappa([]) is None
    assert cohen_kappa([(3, 3), (3, 3)]) is None


def test_a_queue_without_a_pair_of_reviews_reads_as_a_dash_not_python() -> None:
    """The page showed "failed | 0 | None | {}" under Agreement between reviewers."""
    from dashboard.review_widgets import agreement_table

    table = agreement_table([{"queue": "failed", "pairs": 0, "kappa": None, "matrix": {}},
                             {"queue": "complaints", "pairs": 4, "kappa": 0.5, "matrix": {"1/1": 2}}])
    assert table.to_dict("records") == [{"queue": "failed", "pairs": "0", "kappa": "–", "matrix": "–"},
                                        {"queue": "complaints", "pairs": "4", "kappa": "0.5", "matrix": "{'1/1': 2}"}]
