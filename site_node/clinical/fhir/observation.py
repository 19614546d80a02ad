"""Observation -> MEASUREMENT (labs, vitals; one row per component, e.g. blood pressure) or OBSERVATION.

Routing per the FHIR-to-OMOP IG: category ``laboratory`` / ``vital-signs``, or a code whose standard
concept lies in the Measurement domain, goes to MEASUREMENT; anything else to OBSERVATION. Free-text
values (``valueString``) and notes are never copied.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from site_node.clinical.fhir.base import (
    EHR,
    MapContext,
    Mapped,
    MissingDate,
    day,
    period_bounds,
    quantity_value,
    to_datetime,
)
from site_node.clinical.fhir.codes import is_ucum

_MEASUREMENT_CATEGORIES = {"laboratory", "vital-signs"}
_UCUM_SYSTEM = "http://unitsofmeasure.org"
#: Quantity.comparator -> OMOP operator concept (vocabulary "Meas Value Operator").
OPERATORS = {"<": 4171756, "<=": 4171754, ">=": 4171755, ">": 4172704}


def unit_of(quantity: Any) -> str | None:
    """The unit to keep: the UCUM code, else the unit text when it is a well-formed unit (never free text)."""
    code = quantity.code if quantity.system in (None, _UCUM_SYSTEM) else None
    for candidate in (code, quantity.unit):
        if candidate and is_ucum(str(candidate)):
            return str(candidate)
    return None


def _categories(observation: Any) -> set[str]:
    return {c.code for cat in observation.category or [] for c in cat.coding or [] if c.code}


def _value(ctx: MapContext, holder: Any) -> dict[str, Any]:
    """value_as_number / unit / value_as_concept_id of an Observation or one of its components."""
    out: dict[str, Any] = {}
    quantity = holder.valueQuantity
    if quantity is not None:
        out["value_as_number"] = quantity_value(quantity)
        unit = unit_of(quantity)
        out["unit_source_value"] = unit
        out["unit_concept_id"] = ctx.concepts.lookup("UCUM", unit).concept_id if unit else 0
        if quantity.comparator in OPERATORS and out["value_as_number"] is not None:
            out["operator_concept_id"] = OPERATORS[quantity.comparator]  # MEASUREMENT only
            out["value_source_value"] = f"{quantity.comparator}{out['value_as_number']:g}"
    elif holder.valueCodeableConcept is not None:
        match, code = ctx.code(holder.valueCodeableConcept)
        out["value_as_concept_id"] = match.concept_id
        out["value_source_value"] = code
    elif getattr(holder, "valueInteger", None) is not None:
        out["value_as_number"] = float(holder.valueInteger)
    return out


def _measurement(
    ctx: MapContext,
    ref: str,
    n: int,
    when: dt.datetime,
    code_holder: Any,
    value_holder: Any,
    visit: int | None,
    ranges: Any,
) -> dict[str, Any]:
    match, code = ctx.code(code_holder)
    row = {
        "measurement_id": ctx.row_id("measurement", ref, n),
        "measurement_concept_id": match.concept_id,
        "measurement_date": day(when),
        "measurement_datetime": when,
        "measurement_type_concept_id": EHR,
        "visit_occurrence_id": visit,
        "measurement_source_value": code,
        "measurement_source_concept_id": match.source_concept_id,
        **_value(ctx, value_holder),
    }
    if ranges:
        row["range_low"] = quantity_value(ranges[0].low)
        row["range_high"] = quantity_value(ranges[0].high)
    return row


def map_observation(observation: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with MEASUREMENT or OBSERVATION rows of an Observation.

    Raises:
        MissingDate: no effective[x] and no issued (field ``Observation.effective[x]``).
    """
    out.patient_key = ctx.patient_key(observation.subject)
    when = to_datetime(observation.effectiveDateTime) or period_bounds(observation.effectivePeriod)[0]
    when = when or to_datetime(observation.effectiveInstant) or to_datetime(observation.issued)
    when = when or ctx.encounter_start(observation.encounter, "Observation.effective[x]")
    if when is None:
        raise MissingDate("Observation.effective[x]")
    ref = f"Observation/{observation.id}"
    visit = ctx.visit_id(observation.encounter)
    match, code = ctx.code(observation.code)
    is_measurement = (
        bool(_categories(observation) & _MEASUREMENT_CATEGORIES) or match.domain_id == "Measurement"
    )
    if is_measurement and observation.component:
        for n, component in enumerate(observation.component):
            out.rows.append(
                (
                    "measurement",
                    _measurement(
                        ctx, ref, n, when, component.code, component, visit, component.referenceRange
                    ),
                )
            )
        return
    if is_measurement:
        out.rows.append(
            (
                "measurement",
                _measurement(
                    ctx, ref, 0, when, observation.code, observation, visit, observation.referenceRange
                ),
            )
        )
        return
    value = _value(ctx, observation)
    out.rows.append(
        (
            "observation",
            {
                "observation_id": ctx.row_id("observation", ref),
                "observation_concept_id": match.concept_id,
                "observation_date": day(when),
                "observation_datetime": when,
                "observation_type_concept_id": EHR,
                "value_as_number": value.get("value_as_number"),
                "value_as_concept_id": value.get("value_as_concept_id"),
                "unit_concept_id": value.get("unit_concept_id"),
                "unit_source_value": value.get("unit_source_value"),
                "value_source_value": value.get("value_source_value"),
                "visit_occurrence_id": visit,
                "observation_source_value": code,
                "observation_source_concept_id": match.source_concept_id,
            },
        )
    )
