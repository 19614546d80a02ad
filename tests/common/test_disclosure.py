"""Cell-key perturbation (common.disclosure) and the complementary rule (common.suppression)."""

from __future__ import annotations

import pytest

from common.crypto import Pseudonymizer
from common.disclosure import (
    cell_key,
    cell_offset,
    change_probability,
    differencing_bound,
    perturb_count,
    ptable,
    publish_count,
    record_key,
)
from common.suppression import derivable, suppress_row

KEY = bytes(range(32))


def test_record_keys_are_keyed_small_and_pinned() -> None:
    p = Pseudonymizer(KEY)
    keys = [record_key(p, pid, base=5) for pid in range(200)]
    assert all(0 <= k < 2**32 // 5 for k in keys)
    assert record_key(p, 42, base=5) == record_key(Pseudonymizer(KEY), "42", base=5)
    assert record_key(Pseudonymizer(bytes(32)), 42, base=5) != record_key(p, 42, base=5)
    assert record_key(p, 42, base=5) == 838_617_143  # known answer: a change of key handling fails loudly


def test_same_cell_content_gives_the_same_published_value() -> None:
    p = Pseudonymizer(KEY)
    offset = cell_offset(p, "ct-chest/sex/male")
    persons = list(range(100, 137))
    first = perturb_count(37, cell_key([record_key(p, x) for x in persons], offset))
    again = perturb_count(37, cell_key([record_key(p, x) for x in reversed(persons)], offset))
    assert first == again and first in (35, 40)


@pytest.mark.parametrize("base", [3, 5, 10])
def test_ptable_is_unbiased_and_rounds_to_the_base(base: int) -> None:
    for n in range(20, 20 + base):
        rows = ptable(base)[n % base]
        mean = sum((high - low) * (n + delta) for low, high, delta in rows)
        assert mean == pytest.approx(n)
        assert all((n + delta) % base == 0 for _, _, delta in rows)


def test_zero_stays_zero_and_the_floor_is_never_undercut() -> None:
    assert perturb_count(0, 0.99) == 0
    assert perturb_count(13, 0.99, base=5, floor=12) == 15  # would round to 10 < floor: first multiple >= 12
    assert perturb_count(13, 0.0, base=5, floor=12) == 15
    with pytest.raises(ValueError):
        perturb_count(5, 1.0)


def test_one_patient_changes_a_cell_with_probability_one_over_the_base() -> None:
    assert differencing_bound([1], base=5, steps=100) == pytest.approx(0.2, abs=0.01)
    assert differencing_bound([1], base=10, steps=100) == pytest.approx(0.1, abs=0.01)
    # a patient's several series would show far more often: why facet cells publish persons only
    assert change_probability([50], [5], base=5, steps=100) == pytest.approx(1.0)


def test_hidden_cells_derivable_from_the_total_are_detected() -> None:
    # the case: total 22, female 20, male "<10" -> male = 2 by subtraction
    assert derivable(22, {"female": 20, "male": "<10"}, 10)
    assert not derivable(22, {"female": "suppressed", "male": "<10"}, 10)
    assert not derivable("<10", {"female": 20, "male": "<10"}, 10)
    assert not derivable(22, {"female": 20, "male": 2}, 10)  # nothing hidden


def test_site_rule_suppresses_until_subtraction_of_published_values_is_safe() -> None:
    # perturbed visible cells can sum close to the perturbed total: a second cell goes too
    row = suppress_row(
        {"female": 20, "male": 3, "unknown": 12}, 10, 35, {"female": 20, "male": 5, "unknown": 10}
    )
    assert row == {"female": 20, "male": "<10", "unknown": "suppressed"} or not derivable(35, row, 10)
    assert not derivable(35, row, 10)
    assert suppress_row({"a": 20, "b": 2}, 10, False) == {"a": 20, "b": "<10"}


def test_publish_count_applies_the_floor_then_the_cell_key() -> None:
    p = Pseudonymizer(KEY)
    assert publish_count(p, [], "q", floor=10) == 0
    assert publish_count(p, [1, 2, 3, 3], "q", floor=10) == "<10"
    shown = publish_count(p, range(12), "q", floor=10)
    assert shown in (10, 15) and shown == publish_count(p, list(reversed(range(12))), "q", floor=10)
