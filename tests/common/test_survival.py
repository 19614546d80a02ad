"""The survival release rule: every released Kaplan-Meier step rests on at least k persons."""

from __future__ import annotations

import math
import random

import pytest

from common.survival import (
    check_table,
    km_curve,
    life_table,
    pool_tables,
    releasable_prefix,
    releasable_table,
)


def _cohort(n: int, seed: int, mean: float = 600.0, death: float = 0.7) -> tuple[list[float], list[bool]]:
    rng = random.Random(seed)
    times = [float(int(rng.expovariate(1 / mean)) + 1) for _ in range(n)]
    return times, [rng.random() < death for _ in times]


def _assert_released(rows: list[dict[str, int]], k: int) -> None:
    assert rows and rows[0]["start"] == 0
    for row, nxt in zip(rows, rows[1:], strict=False):
        assert row["end"] == nxt["start"]  # contiguous
        assert nxt["at_risk"] == row["at_risk"] - row["events"] - row["censored"]
    for row in rows:
        assert row["at_risk"] >= k
        assert row["events"] == 0 or row["events"] >= k
        assert row["censored"] == 0 or row["censored"] >= k
    left = rows[-1]["at_risk"] - rows[-1]["events"] - rows[-1]["censored"]
    assert left == 0 or left >= k  # no number below k can be derived after the last step


@pytest.mark.parametrize("k", [5, 10, 11])
@pytest.mark.parametrize("n", [40, 150, 600])
@pytest.mark.parametrize("seed", range(6))
def test_every_released_step_rests_on_k(n: int, seed: int, k: int) -> None:
    times, events = _cohort(n, seed)
    table = releasable_table(times, events, k, 1440)
    if table["rows"]:
        _assert_released(table["rows"], k)
        assert check_table(table["rows"], k) is None
    else:
        assert table["withheld"]


def test_fewer_than_k_persons_release_nothing() -> None:
    table = releasable_table([10.0, 20.0, 30.0], [True, True, False], 5, 360)
    assert table["rows"] == [] and table["withheld"] == "fewer than k persons"


def test_a_single_death_is_never_a_step() -> None:
    times = [400.0] * 30 + [15.0]
    events = [False] * 30 + [True]  # one person died on day 15
    table = releasable_table(times, events, 10, 360)
    assert all(r["events"] == 0 or r["events"] >= 10 for r in table["rows"])
    assert table["rows"] == []  # the only event can never reach k: no curve


def test_life_table_counts_add_up() -> None:
    times, events = _cohort(200, 1)
    rows = life_table(times, events, 30, 720)
    assert sum(r["events"] + r["censored"] for r in rows) == 200
    assert rows[0]["at_risk"] == 200


def test_the_prefix_stops_before_a_small_cell_and_a_small_remainder() -> None:
    rows = [
        {"start": 0, "end": 30, "at_risk": 50, "events": 12, "censored": 0},
        {"start": 30, "end": 60, "at_risk": 38, "events": 0, "censored": 30},
        {"start": 60, "end": 90, "at_risk": 8, "events": 3, "censored": 5},
    ]
    # the third interval has < k at risk; after the second only 8 would remain: it goes too
    assert releasable_prefix(rows, 10) == rows[:1]
    assert check_table(rows[:2], 10) == "between 1 and k-1 persons remain at risk after the last interval"


def test_the_finest_width_with_the_most_steps_is_released() -> None:
    times, events = _cohort(1000, 4)
    table = releasable_table(times, events, 10, 1440)
    assert table["width_days"] <= 90 and len(table["rows"]) >= 8


def test_km_is_the_product_over_released_intervals() -> None:
    times, events = _cohort(600, 2)
    rows = releasable_table(times, events, 10, 1440)["rows"]
    curve = km_curve(rows)
    expected = 1.0
    for row, point in zip(rows, curve, strict=True):
        expected *= 1 - row["events"] / row["at_risk"]
        assert math.isclose(point["survival"], expected, rel_tol=1e-9)
        assert point["lower"] <= point["survival"] <= point["upper"]


@pytest.mark.parametrize("seed", range(5))
def test_pooled_tables_keep_the_rule(seed: int) -> None:
    sizes = {"a": 120, "b": 300, "c": 60}
    tables = {
        name: releasable_table(*_cohort(n, seed * 10 + i), 10, 1440)
        for i, (name, n) in enumerate(sizes.items())
    }
    pooled = pool_tables(tables, 10)
    assert pooled["rows"], pooled
    _assert_released(pooled["rows"], 10)
    assert pooled["rows"][0]["at_risk"] == sum(sizes[s] for s in pooled["sites"])
    assert len(pooled["sites"]) >= 2
