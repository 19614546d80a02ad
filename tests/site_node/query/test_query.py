"""Cohort queries at the site: the definition selects the right persons; nothing released is below k."""

from __future__ import annotations

from typing import Any

import pytest

from common.schemas.cohort_query import CohortDefinition, FedQueryParams, QueryResult
from common.survival import check_table
from site_node.query.cohort import evaluate
from site_node.query.result import release
from tests.site_node.publish.conftest import CT, MALE, NSCLC
from tests.site_node.query.conftest import NSCLC_CHILD


def _ints(value: Any) -> list[int]:
    """Every integer anywhere inside a JSON-like value."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    return []


def _p(site: Any) -> Any:
    return site.pseudonymizer()


def _n(rows: list, keep: Any) -> int:
    return sum(1 for p, _, _ in rows if p.series[0][0] == CT and keep(p))


def test_an_empty_definition_counts_everyone(query_site) -> None:  # type: ignore[no-untyped-def]
    assert len(evaluate(query_site.engine, CohortDefinition())) == 156


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"modality": "CT"}, lambda rows: sum(1 for p, _, _ in rows if p.series[0][0] == CT)),
        ({"modality": "MR", "body_part": "BRAIN"}, lambda rows: 6),
        ({"concept_ids": [NSCLC]}, lambda rows: 150),  # with descendants
        ({"concept_ids": [NSCLC], "include_descendants": False}, lambda rows: 112),
        ({"concept_ids": [NSCLC_CHILD]}, lambda rows: 38),
        ({"sex": "male", "modality": "CT"}, lambda rows: _n(rows, lambda p: p.sex == MALE)),
        ({"age_min": 60, "modality": "CT"}, lambda rows: _n(rows, lambda p: 2018 - p.born >= 60)),
        ({"date_from": "2020-01-01"}, lambda rows: 6),
        ({"date_to": "2017-12-31", "modality": "CT"}, lambda rows: 0),
    ],
)  # fmt: skip
def test_definitions_select_the_right_persons(query_site, definition, expected) -> None:  # type: ignore[no-untyped-def]
    members = evaluate(query_site.engine, CohortDefinition.model_validate(definition))
    assert len(members) == expected(query_site.rows)


def test_follow_up_runs_from_index_to_death_or_end_of_observation(query_site) -> None:  # type: ignore[no-untyped-def]
    members = {m.person_id: m for m in evaluate(query_site.engine, CohortDefinition(modality="CT"))}
    for pid, (_, days, died) in enumerate(query_site.rows[:150], start=1):
        assert members[pid].follow_up_days == days and members[pid].died == died


@pytest.mark.parametrize(
    "definition",
    [
        {},
        {"modality": "CT"},
        {"sex": "male"},
        {"age_min": 75},
        {"modality": "MR"},
        {"concept_ids": [NSCLC_CHILD]},
    ],
)
def test_released_results_hold_no_number_below_k(query_site, definition) -> None:  # type: ignore[no-untyped-def]
    k = query_site.settings.floor_k
    params = FedQueryParams(cohort=CohortDefinition.model_validate(definition))
    result = release(query_site.settings, params, query_site.pseudonymizer())
    counts = {"persons": result.persons, **result.by_sex, **result.by_age_band}
    assert all(not isinstance(v, int) or v == 0 or v >= k for v in counts.values()), counts
    table = result.survival
    assert table is not None
    for row in table.rows:  # every released step rests on >= k at risk, and 0 or >= k events / censored
        assert row.at_risk >= k and (row.events == 0 or row.events >= k)
        assert row.censored == 0 or row.censored >= k
    assert check_table([r.model_dump() for r in table.rows], k) is None
    QueryResult.model_validate(result.model_dump(mode="json"))  # the hub's own check passes too


def test_small_cohorts_release_markers_and_no_curve(query_site) -> None:  # type: ignore[no-untyped-def]
    result = release(
        query_site.settings, FedQueryParams(cohort=CohortDefinition(modality="MR")), _p(query_site)
    )
    assert result.persons == "<10"
    assert result.survival is not None and result.survival.rows == [] and result.survival.withheld


def test_a_curve_is_released_for_a_large_enough_cohort(query_site) -> None:  # type: ignore[no-untyped-def]
    result = release(
        query_site.settings, FedQueryParams(cohort=CohortDefinition(modality="CT")), _p(query_site)
    )
    base = query_site.settings.disclosure_base
    assert isinstance(result.persons, int) and abs(result.persons - 150) < base  # cell-key perturbed
    assert result.survival is not None and result.survival.rows  # how many steps depends on the site key
    assert sum(r.events for r in result.survival.rows) >= query_site.settings.floor_k


def test_a_result_with_a_small_count_is_refused_by_the_schema() -> None:
    with pytest.raises(ValueError, match="below the floor"):
        QueryResult(site="site-a", floor_k=10, persons=12, by_sex={"male": 3, "female": 9})


@pytest.mark.parametrize(
    "params",
    [
        {"cohort": {"age_min": 80, "age_max": 20}},
        {"cohort": {"sex": "other"}},
        {"cohort": {"modality": "ct; drop table person"}},
        {"cohort": {"concept_ids": [-1]}},
        {"horizon_days": 100},
        {"rounds": 3},
    ],
)
def test_bad_parameters_are_refused_naming_the_field(params: dict[str, Any]) -> None:
    from central_hub.jobs.templates import check_params
    from common.errors import InputError

    with pytest.raises(InputError) as info:
        check_params("fedquery", params)
    assert "drop table" not in info.value.public_message


def test_the_same_cohort_asked_differently_gets_the_same_numbers(query_site) -> None:  # type: ignore[no-untyped-def]
    """The perturbation depends on who is in a cell, not on how the query was phrased."""
    p = _p(query_site)
    one = release(query_site.settings, FedQueryParams(cohort=CohortDefinition(modality="CT")), p)
    other = release(query_site.settings, FedQueryParams(cohort=CohortDefinition(concept_ids=[NSCLC])), p)
    again = release(query_site.settings, FedQueryParams(cohort=CohortDefinition(modality="CT")), p)
    assert one.persons == other.persons == again.persons and one.by_sex == other.by_sex
    assert one.survival == again.survival


def test_released_counts_are_perturbed_to_the_base(query_site) -> None:  # type: ignore[no-untyped-def]
    result = release(query_site.settings, FedQueryParams(), _p(query_site))
    base = query_site.settings.disclosure_base
    counts = [result.persons, *result.by_sex.values(), *result.by_age_band.values()]
    assert all(c % base == 0 for c in counts if isinstance(c, int))
    for row in result.survival.rows if result.survival else []:
        assert row.events % base == 0 and row.censored % base == 0
