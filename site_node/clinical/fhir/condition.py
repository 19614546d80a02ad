"""Condition -> CONDITION_OCCURRENCE."""

from __future__ import annotations

from typing import Any

from site_node.clinical.fhir.base import EHR, MapContext, Mapped, MissingDate, day, period_bounds, to_datetime
from site_node.clinical.fhir.codes import CONDITION_CLINICAL


def map_condition(condition: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the CONDITION_OCCURRENCE row of a Condition.

    Start: onsetDateTime, else onsetPeriod.start, else recordedDate, else the start of its
    Encounter when that is in the same Bundle (an ``onsetString`` or ``onsetAge`` gives no date).

    Raises:
        MissingDate: none of these (field ``Condition.onset[x]``).
    """
    out.patient_key = ctx.patient_key(condition.subject)
    start = to_datetime(condition.onsetDateTime)
    if start is None and condition.onsetPeriod is not None:
        start = period_bounds(condition.onsetPeriod)[0]
    start = (
        start
        or to_datetime(condition.recordedDate)
        or ctx.encounter_start(condition.encounter, "Condition.onset[x]")
    )
    if start is None:
        raise MissingDate("Condition.onset[x]")
    end = to_datetime(condition.abatementDateTime)
    if end is None and condition.abatementPeriod is not None:
        end = period_bounds(condition.abatementPeriod)[1]
    match, code = ctx.code(condition.code)
    status = None
    if condition.clinicalStatus is not None and condition.clinicalStatus.coding:
        status = condition.clinicalStatus.coding[0].code
        status = status if status in CONDITION_CLINICAL else None
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
