"""AllergyIntolerance -> OBSERVATION (the FHIR-to-OMOP IG maps allergies to the Observation domain).

One OBSERVATION row per AllergyIntolerance: ``observation_concept_id`` is the standard concept of the
allergen code (RxNorm / SNOMED; 0 with the code kept in ``observation_source_value`` until the site
loads its Athena vocabulary), the date is the onset, else the recorded date, else the last
occurrence. Only coded elements are kept: ``type`` (allergy / intolerance) goes to
``qualifier_source_value`` and ``criticality`` to ``value_source_value``, both values of required
FHIR value sets. Notes, reactions' free text and the asserter never reach the database.
"""

from __future__ import annotations

from typing import Any

from site_node.clinical.fhir.base import EHR, MapContext, Mapped, MissingDate, day, period_bounds, to_datetime

#: Codes of the required R4 value sets AllergyIntoleranceType and AllergyIntoleranceCriticality.
TYPES = frozenset({"allergy", "intolerance"})
CRITICALITY = frozenset({"low", "high", "unable-to-assess"})


def _coded(value: Any, allowed: frozenset[str]) -> str | None:
    """``value`` when it is one of ``allowed`` codes (anything else could be typed text)."""
    text = str(value) if value is not None else None
    return text if text in allowed else None


def map_allergy(allergy: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the OBSERVATION row of an AllergyIntolerance.

    Raises:
        MissingDate: no onsetDateTime / onsetPeriod, recordedDate or lastOccurrence (field
            ``AllergyIntolerance.onset[x]``).
    """
    out.patient_key = ctx.patient_key(allergy.patient)
    when = to_datetime(allergy.onsetDateTime)
    if when is None and allergy.onsetPeriod is not None:
        when = period_bounds(allergy.onsetPeriod)[0]
    when = when or to_datetime(allergy.recordedDate) or to_datetime(allergy.lastOccurrence)
    when = when or ctx.encounter_start(allergy.encounter, "AllergyIntolerance.onset[x]")
    if when is None:
        raise MissingDate("AllergyIntolerance.onset[x]")
    match, code = ctx.code(allergy.code)
    out.rows.append(
        (
            "observation",
            {
                "observation_id": ctx.row_id("observation", f"AllergyIntolerance/{allergy.id}"),
                "observation_concept_id": match.concept_id,
                "observation_date": day(when),
                "observation_datetime": when,
                "observation_type_concept_id": EHR,
                "visit_occurrence_id": ctx.visit_id(allergy.encounter),
                "observation_source_value": code,
                "observation_source_concept_id": match.source_concept_id,
                "qualifier_source_value": _coded(allergy.type, TYPES),
                "value_source_value": _coded(allergy.criticality, CRITICALITY),
            },
        )
    )
