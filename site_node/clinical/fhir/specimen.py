"""Specimen -> SPECIMEN (type, collection date, quantity, body site).

The accession identifier and the collector are not copied (``specimen_source_id`` stays NULL: an
accession number is an identifier of the lab, not a code); notes and processing text neither.
"""

from __future__ import annotations

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
from site_node.clinical.fhir.observation import unit_of


def map_specimen(specimen: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the SPECIMEN row of a Specimen (collected[x], else receivedTime).

    Raises:
        MissingDate: no collection date and no receivedTime (field ``Specimen.collection.collected[x]``).
    """
    out.patient_key = ctx.patient_key(specimen.subject)
    collection = specimen.collection
    when = None
    if collection is not None:
        when = to_datetime(collection.collectedDateTime) or period_bounds(collection.collectedPeriod)[0]
    when = when or to_datetime(specimen.receivedTime)
    if when is None:
        raise MissingDate("Specimen.collection.collected[x]")
    match, code = ctx.code(specimen.type)
    site, site_code = (
        ctx.code(collection.bodySite) if collection is not None and collection.bodySite else (None, None)
    )
    quantity = collection.quantity if collection is not None else None
    unit = unit_of(quantity) if quantity is not None else None
    out.rows.append(
        (
            "specimen",
            {
                "specimen_id": ctx.row_id("specimen", f"Specimen/{specimen.id}"),
                "specimen_concept_id": match.concept_id,
                "specimen_type_concept_id": EHR,
                "specimen_date": day(when),
                "specimen_datetime": when,
                "quantity": quantity_value(quantity),
                "unit_concept_id": ctx.concepts.lookup("UCUM", unit).concept_id if unit else None,
                "unit_source_value": unit,
                "anatomic_site_concept_id": site.concept_id if site is not None else None,
                "anatomic_site_source_value": site_code,
                "specimen_source_value": code,
            },
        )
    )
