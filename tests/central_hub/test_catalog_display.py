"""Display of summed counts: the list form follows the same rules as the single form."""

from __future__ import annotations

import itertools

from central_hub.catalog.display import summed_count, summed_counts


def test_summed_counts_match_summed_count() -> None:
    cases = [
        (known, hidden, parts, unavailable)
        for known, hidden, parts, unavailable in itertools.product((0, 7, 140), (0, 1, 2), (1, 2, 3), (0, 1))
        if hidden + unavailable <= parts
    ]
    assert summed_counts(*(list(column) for column in zip(*cases, strict=True))) == [
        summed_count(k, h, p, u) for k, h, p, u in cases
    ]
    assert summed_counts([0], [0], [2], [2]) == [{"value": None, "display": "n/a", "lower_bound": False}]
    assert summed_counts([140], [1], [2], [0])[0] == {"value": 141, "display": "≥ 141", "lower_bound": True}


def test_a_sum_of_suppressed_cells_only_is_at_least_their_number() -> None:
    """Every suppressed cell holds at least one person: three "<10" cells are "≥ 3", never "≥ 0"."""
    assert summed_count(0, 3, 3) == {"value": 3, "display": "≥ 3", "lower_bound": True}
    assert summed_count(0, 0, 2, 1) == {"value": 0, "display": "≥ 0", "lower_bound": True}
    assert summed_count(5, 0, 2, 2) == {"value": None, "display": "n/a", "lower_bound": False}
