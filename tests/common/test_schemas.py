"""The site -> hub cohort summary schema: strict, floor-checked, identifier-free by construction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.schemas import CohortSummary
from common.schemas.cohort_summary import first_floor_violation


def _counts(n: object = 20) -> dict:
    return {"persons": n, "studies": n, "series": n, "instances": n}


def _summary(**changes: object) -> dict:
    coll = {
        "key": "ct-chest",
        "modality": "CT",
        "body_part": "CHEST",
        "description": "CT chest imaging",
        "totals": _counts(),
        "facets": {"sex": {"female": _counts(12), "male": _counts("<10")}},
    }
    base = {"schema_version": 1, "site": "site-a", "floor_k": 10, "collections": [coll]}
    base.update(changes)
    return base


def test_a_valid_summary_round_trips() -> None:
    summary = CohortSummary.model_validate(_summary())
    again = CohortSummary.model_validate_json(summary.model_dump_json())
    assert again == summary and again.collections[0].facets["sex"]["male"].persons == "<10"


def test_instances_may_be_unknown_and_zero_is_allowed() -> None:
    data = _summary()
    data["collections"][0]["totals"] = {"persons": 20, "studies": 20, "series": 0, "instances": None}
    CohortSummary.model_validate(data)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"floor_k": 4}, "floor_k"),
        ({"site": "Site A"}, "site"),
        ({"schema_version": 2}, "schema_version"),
        ({"patients": []}, "patients"),
    ],
)
def test_top_level_fields_are_strict(change, where) -> None:
    with pytest.raises(ValidationError) as exc:
        CohortSummary.model_validate(_summary(**change))
    assert where in str(exc.value)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("totals", "persons"), 3),
        (("totals", "persons"), -1),
        (("totals", "persons"), "<5"),
        (("totals", "persons"), "12"),
        (("totals", "persons"), True),
        (("totals", "persons"), 12.0),
        (("totals", "mrn"), 12),
        (("facets", "ethnicity"), {}),
        (("facets", "sex"), {"female; DROP": _counts()}),
        (("description",), "x" * 201),
        (("description",), "call 555-0100 re: John\n"),
        (("modality",), "ct"),
        (("study_uid",), "1.2.3"),
    ],
)
def test_bad_collection_content_is_refused(path, value) -> None:
    data = _summary()
    target = data["collections"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError):
        CohortSummary.model_validate(data)


def test_floor_violation_names_the_field_not_the_value() -> None:
    summary = CohortSummary.model_validate(_summary())
    assert first_floor_violation(summary) is None
    problem = first_floor_violation(summary, floor=15)  # the hub's stricter registered floor
    assert problem and problem.startswith("collections.0.facets.sex[0].persons")
    assert "female" not in problem


def test_duplicate_collection_keys_are_refused() -> None:
    data = _summary()
    data["collections"].append(dict(data["collections"][0]))
    with pytest.raises(ValidationError, match="duplicate"):
        CohortSummary.model_validate(data)
