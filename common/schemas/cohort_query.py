"""The fedquery job's parameters (a cohort definition) and the result a site releases.

Both the hub (at submit) and each site (before it runs the query) validate the parameters with
:class:`FedQueryParams`; a site releases only a :class:`QueryResult`, whose counts obey the site's
floor (a count is 0, at least ``floor_k``, ``"<k"`` or ``"suppressed"``) and whose survival table
obeys :func:`common.survival.check_table`. See docs/access.md and jobs/fedquery/README.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.schemas.cohort_summary import Count, _check_count

#: Life-table interval widths (days) a survival curve may be released at; each divides the next.
KM_WIDTHS = (30, 90, 180, 360, 720, 1440, 2880)
HORIZONS = (360, 720, 1440, 2880)


class CohortDefinition(BaseModel):
    """Who is in the cohort; every part is optional and an empty definition means everyone.

    A person qualifies with at least one event (condition, procedure, drug, measurement or
    observation) of one of ``concept_ids`` (or their descendants, where the site's vocabulary has
    CONCEPT_ANCESTOR) and at least one imaging series of ``modality`` / ``body_part``, each inside
    the date window. The index date is the first qualifying event (the concept event when concepts
    are given, else the imaging series, else the start of observation). Age and sex apply at index.
    """

    model_config = ConfigDict(extra="forbid")

    concept_ids: Annotated[list[Annotated[int, Field(ge=1, le=2**31 - 1)]], Field(max_length=50)] = []
    include_descendants: bool = True
    age_min: Annotated[int | None, Field(ge=0, le=130)] = None
    age_max: Annotated[int | None, Field(ge=0, le=130)] = None
    sex: Literal["female", "male"] | None = None
    modality: Annotated[str | None, Field(pattern=r"^[A-Z0-9]{1,16}$")] = None
    body_part: Annotated[str | None, Field(pattern=r"^[A-Z0-9][A-Z0-9 _-]{0,63}$")] = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    @model_validator(mode="after")
    def _ranges(self) -> CohortDefinition:
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise ValueError("age_min must not exceed age_max")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from must not be after date_to")
        return self


class FedQueryParams(BaseModel):
    """Parameters of the fedquery job template."""

    model_config = ConfigDict(extra="forbid")

    cohort: CohortDefinition = Field(default_factory=CohortDefinition)
    survival: bool = True
    horizon_days: Literal[360, 720, 1440, 2880] = 1440


class SurvivalRow(BaseModel):
    """One released life-table interval ``[start, end)`` (days from index)."""

    model_config = ConfigDict(extra="forbid")

    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=1)]
    at_risk: Annotated[int, Field(ge=0)]
    events: Annotated[int, Field(ge=0)]
    censored: Annotated[int, Field(ge=0)]


class SurvivalTable(BaseModel):
    """A coarsened life table, or the reason none is released."""

    model_config = ConfigDict(extra="forbid")

    width_days: int | None = None
    rows: list[SurvivalRow] = []
    withheld: str | None = None


class QueryResult(BaseModel):
    """What one site releases for a fedquery job."""

    model_config = ConfigDict(extra="forbid")

    site: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    floor_k: Annotated[int, Field(ge=5, le=1000)]
    persons: Count
    by_sex: dict[str, Count] = {}
    by_age_band: dict[str, Count] = {}
    survival: SurvivalTable | None = None

    @model_validator(mode="after")
    def _floor(self) -> QueryResult:
        for name, value in [("persons", self.persons), *self.by_sex.items(), *self.by_age_band.items()]:
            _check_count(value, name)
            if isinstance(value, int) and 0 < value < self.floor_k:
                raise ValueError(f"{name}: count below the floor")
        return self
