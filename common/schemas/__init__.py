"""Pydantic schemas of everything that crosses the site -> hub boundary."""

from common.schemas.cohort_summary import (
    BREAKDOWN_FACETS,
    FACETS,
    MEASURES,
    SCHEMA_VERSION,
    SECONDARY,
    CohortSummary,
    Collection,
    Counts,
)

__all__ = [
    "BREAKDOWN_FACETS",
    "FACETS",
    "MEASURES",
    "SCHEMA_VERSION",
    "SECONDARY",
    "CohortSummary",
    "Collection",
    "Counts",
]
