"""Small-cell suppression rules, case by case."""

from __future__ import annotations

import pytest

from site_node.publish.suppression import suppress_row, suppress_value


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (1, "<10"), (9, "<10"), (10, 10), (None, None)])
def test_primary_suppression(value, expected) -> None:
    assert suppress_value(value, 10) == expected


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({"a": 50, "b": 40}, {"a": 50, "b": 40}),
        # one tiny cell beside a published total: the smallest other cell goes too
        ({"a": 50, "b": 40, "c": 3}, {"a": 50, "b": "suppressed", "c": "<10"}),
        # two tiny cells whose sum is itself tiny: still a complement
        ({"a": 50, "b": 20, "c": 1, "d": 1}, {"a": 50, "b": "suppressed", "c": "<10", "d": "<10"}),
        # tiny cells already holding k together need no complement
        ({"a": 50, "b": 6, "c": 7}, {"a": 50, "b": "<10", "c": "<10"}),
        ({"a": 3}, {"a": "<10"}),
        ({"a": 0, "b": 30, "c": 2}, {"a": 0, "b": "suppressed", "c": "<10"}),
    ],
)
def test_complementary_suppression(cells, expected) -> None:
    assert suppress_row(cells, 10) == expected


def test_no_complement_when_the_total_is_not_published() -> None:
    assert suppress_row({"a": 4, "b": 3}, 10, total_published=False) == {"a": "<10", "b": "<10"}


@pytest.mark.parametrize("k", [5, 10, 11, 20])
@pytest.mark.parametrize("seed", range(20))
def test_no_suppressed_cell_is_recoverable_by_subtraction(k: int, seed: int) -> None:
    import random

    rng = random.Random(seed)
    cells = {str(i): rng.choice([0, 1, 2, 3, k - 1, k, k + 1, 25, 60]) for i in range(rng.randint(1, 6))}
    total = sum(cells.values())
    out = suppress_row(cells, k, total_published=total >= k)
    hidden = [v for v, shown in out.items() if not isinstance(shown, int)]
    assert all(isinstance(out[v], str) for v in cells if 0 < cells[v] < k)
    if total >= k and hidden:
        assert sum(cells[v] for v in hidden) >= k  # what subtraction yields is never a small count
        assert len(hidden) >= 2 or not any(0 < cells[v] < k for v in hidden)
