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
    assert summed_counts([140], [1], [2], [0])[0] == {"value": 140, "display": "≥ 140", "lower_bound": True}
