"""The cohort summary a site publishes to the hub catalog (schema version 1).

Only counts cross the boundary: per collection (the site's imaging grouped by modality and body
part) the numbers of persons, studies, series and instances, in total and broken down by facet.
A count is either a non-negative integer at or above the site's floor ``k`` (zero is allowed: a true
zero is safe to show), the string ``"<k"`` (primary suppression: the true count is between 1 and
k-1), or the string ``"suppressed"`` (complementary suppression: withheld so that a ``"<k"`` cell
cannot be recovered by subtraction). Every model forbids unknown fields. See docs/cohort-summary.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

SCHEMA_VERSION = 1
MEASURES = ("persons", "studies", "series", "instances")
#: Facets a collection is broken down by (modality and body part define the collection itself).
BREAKDOWN_FACETS = ("sex", "age_band", "condition", "study_year_band")
FACETS = ("modality", "body_part", *BREAKDOWN_FACETS)
#: Marker of a complementary-suppressed cell (its true value is not below the floor).
SECONDARY = "suppressed"
MAX_COLLECTIONS = 2000
MAX_VALUES_PER_FACET = 200
#: Largest count accepted (2**53: exact in a JSON number read as a double, fits every integer column).
MAX_COUNT = 2**53

_BELOW = re.compile(r"^<([0-9]{1,4})$")
_VALUE = r"^[A-Za-z0-9][A-Za-z0-9 +,./()_-]{0,63}$"

FacetName = Literal["sex", "age_band", "condition", "study_year_band"]
FacetValue = Annotated[str, Field(pattern=_VALUE, max_length=64)]
Count = StrictInt | str


def _check_count(value: int | str | None, field: str) -> int | str | None:
    if value is None or isinstance(value, int):
        if isinstance(value, int) and not 0 <= value <= MAX_COUNT:
            raise ValueError(f"{field} must be between 0 and 2**53")
        return value
    if value == SECONDARY or _BELOW.match(value):
        return value
    raise ValueError(f"{field} must be an integer, '<k' or '{SECONDARY}'")


class Counts(BaseModel):
    """The four measures of one cell.

    ``instances`` is None when the site cannot count them; a facet cell's ``studies``, ``series`` and
    ``instances`` are None when the site publishes persons only there (cell-key disclosure control).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    persons: Count
    studies: Count | None
    series: Count | None
    instances: Count | None = None

    @field_validator("persons", "studies", "series", "instances")
    @classmethod
    def _valid(cls, value: int | str | None, info) -> int | str | None:  # type: ignore[no-untyped-def]
        return _check_count(value, info.field_name)

    def items(self) -> list[tuple[str, int | str | None]]:
        """(measure, value) pairs in the order of :data:`MEASURES`."""
        return [(m, getattr(self, m)) for m in MEASURES]


class Collection(BaseModel):
    """One collection: a site's imaging of one modality and body part."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    modality: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")]
    body_part: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9 _-]{0,63}$")]
    description: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9 ,.()+/_-]*$")]
    totals: Counts
    facets: dict[FacetName, Annotated[dict[FacetValue, Counts], Field(max_length=MAX_VALUES_PER_FACET)]]


class CohortSummary(BaseModel):
    """Everything one site publishes to the catalog; replaces its previous summary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    site: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    floor_k: Annotated[int, Field(ge=5, le=1000)]
    collections: Annotated[list[Collection], Field(max_length=MAX_COLLECTIONS)]

    @model_validator(mode="after")
    def _floor_respected(self) -> CohortSummary:
        problem = first_floor_violation(self)
        if problem:
            raise ValueError(problem)
        keys = [c.key for c in self.collections]
        if len(keys) != len(set(keys)):
            raise ValueError("collections: duplicate key")
        return self


def iter_counts(summary: CohortSummary):  # type: ignore[no-untyped-def]
    """Yield ``(path, value)`` for every count in the summary (path names the field, never data)."""
    for i, coll in enumerate(summary.collections):
        for measure, value in coll.totals.items():
            yield f"collections.{i}.totals.{measure}", value
        for facet, cells in coll.facets.items():
            for j, (_, counts) in enumerate(cells.items()):
                for measure, value in counts.items():
                    yield f"collections.{i}.facets.{facet}[{j}].{measure}", value


def first_floor_violation(summary: CohortSummary, floor: int | None = None) -> str | None:
    """The first count that breaks the floor, described by its path; None when all are safe.

    Args:
        summary: the summary to check.
        floor: the floor to enforce; defaults to the summary's own ``floor_k``.
    """
    k = floor if floor is not None else summary.floor_k
    for path, value in iter_counts(summary):
        if isinstance(value, int) and 0 < value < k:
            return f"{path}: count below the floor k={k} must be sent as '<{k}'"
        if isinstance(value, str) and value != SECONDARY:
            match = _BELOW.match(value)
            if match and int(match.group(1)) != summary.floor_k:
                return f"{path}: '<n' marker must use the declared floor_k"
    return None
