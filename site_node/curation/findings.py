"""QC findings and the per-series curation outcome.

A finding names a check and, when it excludes a series, says so. Details name tags and counts,
never header values (a value may be PHI).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Finding codes that exclude a series from the training set.
FAILING = frozenset(
    {
        "mixed_orientation",
        "missing_slice",
        "duplicate_slice_position",
        "irregular_spacing",
        "mixed_frame_of_reference",
        "mixed_geometry",
        "missing_geometry",
        "too_few_slices",
        "missing_label",
        "unreadable",
        "withdrawn",
        "seg_unknown_series",
        "seg_geometry",
        "seg_frame_of_reference",
    }
)


@dataclass(frozen=True)
class Finding:
    """One QC observation about a series (or a SEG object)."""

    code: str
    detail: str = ""

    @property
    def failing(self) -> bool:
        """True when the finding excludes the series."""
        return self.code in FAILING


@dataclass
class SeriesOutcome:
    """What curation decided for one series."""

    series_uid: str
    patient: str
    modality: str
    n_instances: int = 0
    shape: tuple[int, ...] | None = None
    spacing: tuple[float, ...] | None = None
    labelled: bool = False
    label_voxels: int = 0
    image: str | None = None
    label: str | None = None
    split: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def included(self) -> bool:
        """True when no failing finding was raised."""
        return not any(f.failing for f in self.findings)

    @property
    def reasons(self) -> list[str]:
        """Codes of the failing findings (why the series was excluded)."""
        return [f.code for f in self.findings if f.failing]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used in the QC report."""
        out = asdict(self)
        out["included"] = self.included
        out["reasons"] = self.reasons
        out["findings"] = [asdict(f) | {"failing": f.failing} for f in self.findings]
        return out
