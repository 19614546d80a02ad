"""Condition -> CONDITION_OCCURRENCE."""

from __future__ import annotations

from typing import Any

from site_node.clinical.fhir.base import EHR, MapContext, Mapped, day, period_bounds, to_datetime


def map_condition(condition: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the CONDITION_OCCURRENCE row of a Condition (onset, else recorded date)."""
    out.patient_key = ctx.patient_key(condition.subject)
    start = to_datetime(condition.onsetDateTime)
    if start is None and condition.onsetPeriod is not None:
        start = period_bounds(condition.onsetPeriod)[0]
    start = start or to_datetime(condition.recordedDate)
    if start is None:
        return
    end = to_datetime(condition.abatementDateTime)
    if end is None and condition.abatementPeriod is not None:
        end = period_bounds(condition.abatementPeriod)[1]
    match, code = ctx.code(condition.code)
    status = None
    if condition.clinicalStatus is not None and condition.clinicalStatus.coding:
        status = condition.clinicalStatus.coding[0].code
    out.rows.append(
        (
            "condition_occurrence",
            {
                "condition_occurrence_id": ctx.row_id("condition_occurrence", f"Condition/{condition.id}"),
                "condition_concept_id": match.concept_id,
                "condition_start_date": day(start),
                "condition_start_datetime": start,
                "condition_end_date": day(end),
                "condition_end_datetime": end,
                "condition_type_concept_id": EHR,
                "visit_occurrence_id": ctx.visit_id(condition.encounter),
                "condition_source_value": code,
                "condition_source_concept_id": match.source_concept_id,
                "condition_status_source_value": status,
            },
        )
    )
