"""The state shared while one synthetic site is generated, and its summary."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from site_node.synthetic.fhir import FhirBuilder
from site_node.synthetic.imaging import Writer
from site_node.synthetic.people import Person
from site_node.synthetic.styles import SiteStyle


@dataclass
class SynthSummary:
    """What :func:`generate_site` wrote."""

    out: str
    style: str
    seed: int
    patients: int
    studies: int = 0
    series: int = 0
    instances: int = 0
    segmentations: int = 0
    lesions: int = 0
    fhir: dict[str, int] = field(default_factory=dict)
    crf_rows: int = 0
    phi_values: int = 0
    uid_root: str = ""
    mrn_system: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for ``--json``)."""
        return asdict(self)


@dataclass
class SiteContext:
    """Generator state of one site: output, style, seeded generator, writers, counters."""

    out: Path
    style: SiteStyle
    seed: int
    rng: np.random.Generator
    writer: Writer
    fhir: FhirBuilder
    physicians: list[Person]
    stations: list[str]
    summary: SynthSummary
    accessions: set[str] = field(default_factory=set)


def at(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    """A seeded time of day (07:00-17:59) on ``day``."""
    return dt.datetime.combine(
        day, dt.time(int(rng.integers(7, 18)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    )
