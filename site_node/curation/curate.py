"""``site-node curate``: from the de-identified DICOM export to a training-ready NIfTI set.

Output, under ``<home>/curated/``::

    images/<n>.nii.gz  labels/<n>.nii.gz   one pair per included series (n = index, not a UID)
    datalist.json      MONAI-style {"training": [...], "validation": [...]}, paths relative to curated/
    qc_report.json     one entry per series: findings, included or the reasons it was excluded

The train/validation split is by patient and deterministic (a hash of the patient pseudonym).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from sqlalchemy import select

from common.errors import InputError
from site_node.audit import audited_run
from site_node.curation.findings import Finding, SeriesOutcome
from site_node.curation.seg import SegObject, label_volume, read_seg
from site_node.curation.series import assemble_volume, group_by_modality, scan_export
from site_node.db import withdrawal
from site_node.home import SiteContext

log = logging.getLogger(__name__)

CURATED_DIR = "curated"
DATALIST = "datalist.json"
QC_REPORT = "qc_report.json"
VALIDATION_FRACTION = 0.25
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class CurationReport:
    """Summary of one curation run."""

    series: list[SeriesOutcome] = field(default_factory=list)
    seg_findings: list[dict[str, Any]] = field(default_factory=list)
    unreadable_files: int = 0
    out_dir: Path | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Counts for the run record and the CLI."""
        included = [s for s in self.series if s.included]
        return {
            "series": len(self.series),
            "included": len(included),
            "excluded": len(self.series) - len(included),
            "labelled": sum(1 for s in included if s.labelled),
            "training": sum(1 for s in included if s.split == "training"),
            "validation": sum(1 for s in included if s.split == "validation"),
            "patients": len({s.patient for s in included}),
            "unreadable_files": self.unreadable_files,
            "seg_problems": len(self.seg_findings),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the QC report)."""
        return {
            "counts": self.counts,
            "series": [s.to_dict() for s in self.series],
            "seg_findings": self.seg_findings,
        }


def curated_dir(ctx: SiteContext) -> Path:
    """The folder holding the curated set of a site."""
    return ctx.settings.home / CURATED_DIR


def split_patients(patients: list[str], fraction: float = VALIDATION_FRACTION) -> set[str]:
    """The deterministic validation patients: the lowest hashes, at least one when there are two or more."""
    unique = sorted(set(patients), key=lambda p: hashlib.sha256(f"split:{p}".encode()).hexdigest())
    if len(unique) < 2:
        return set()
    n_val = max(1, math.floor(len(unique) * fraction))
    return set(unique[:n_val])


def _withdrawn(ctx: SiteContext) -> set[str]:
    with ctx.engine.connect() as conn:
        return {row[0] for row in conn.execute(select(withdrawal.c.patient_pseudonym))}


def _match_segs(segs: list[SegObject], known: set[str], report: CurationReport) -> dict[str, SegObject]:
    """Map series UID -> SEG; SEGs referencing unknown series become findings."""
    by_series: dict[str, SegObject] = {}
    for index, seg in enumerate(segs):
        targets = [r for r in seg.referenced_series if r in known]
        if not targets:
            report.seg_findings.append(
                {
                    "seg": index,
                    "patient": str(seg.dataset.get("PatientID", "")),
                    **Finding(
                        "seg_unknown_series", "ReferencedSeriesSequence names no image series in the export"
                    ).__dict__,
                    "failing": True,
                }
            )
            continue
        by_series.setdefault(targets[0], seg)
    return by_series


def _write_nifti(array: np.ndarray, affine_lps: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, _LPS_TO_RAS @ affine_lps), str(path))


def _curate_series(
    outcome: SeriesOutcome,
    files: list[Path],
    seg: SegObject | None,
    out: Path,
    index: int,
) -> None:
    volume, findings = assemble_volume(files)
    outcome.findings += findings
    if volume is None:
        return
    outcome.shape = tuple(int(s) for s in volume.array.shape)
    outcome.spacing = tuple(round(s, 4) for s in volume.spacing)
    if seg is None:
        outcome.findings.append(Finding("missing_label", "no SEG references this series"))
        return
    labels, seg_findings = label_volume(seg, volume)
    outcome.findings += seg_findings
    if labels is None or not outcome.included:
        return
    outcome.labelled = True
    outcome.label_voxels = int(np.count_nonzero(labels))
    outcome.image = f"images/{index:04d}.nii.gz"
    outcome.label = f"labels/{index:04d}.nii.gz"
    _write_nifti(volume.array.astype(np.float32), volume.affine_lps, out / outcome.image)
    _write_nifti(labels, volume.affine_lps, out / outcome.label)


def _write_outputs(report: CurationReport, out: Path) -> None:
    included = [s for s in report.series if s.included]
    val_patients = split_patients([s.patient for s in included])
    datalist: dict[str, list[dict[str, str]]] = {"training": [], "validation": []}
    for s in included:
        s.split = "validation" if s.patient in val_patients else "training"
        datalist[s.split].append({"image": s.image or "", "label": s.label or "", "patient": s.patient})
    (out / DATALIST).write_text(json.dumps(datalist, indent=2))
    (out / QC_REPORT).write_text(json.dumps(report.to_dict(), indent=2, default=str))


def curate_site(
    ctx: SiteContext, source: Path | None = None, progress: Callable[[int, int], None] | None = None
) -> CurationReport:
    """Build the curated training set of a site from its de-identified export.

    Args:
        ctx: the opened site.
        source: the DICOM export to read (defaults to ``<home>/export/dicom``).
        progress: called with (series done, series total) after each image series.

    Returns:
        The report; it is also written to ``<home>/curated/qc_report.json``.

    Raises:
        InputError: the export folder does not exist.
    """
    source = source or ctx.settings.export_dir / "dicom"
    if not source.is_dir():
        raise InputError("no de-identified DICOM export; run 'site-node deid' first", field="export/dicom")
    out = curated_dir(ctx)
    with audited_run(ctx.engine, "curate") as run:
        if out.exists():
            shutil.rmtree(out)  # the curated set is derived data: rebuilt from the export each run
        out.mkdir(parents=True)
        scanned, unreadable = scan_export(source)
        groups = group_by_modality(scanned)
        report = CurationReport(unreadable_files=unreadable, out_dir=out)
        segs = [s for entry in groups.get("seg", []) for p in entry.files if (s := read_seg(p)) is not None]
        images = sorted(groups.get("image", []), key=lambda e: (e.patient, e.series_uid))
        seg_by_series = _match_segs(segs, {e.series_uid for e in images}, report)
        withdrawn = _withdrawn(ctx)
        for index, entry in enumerate(images):
            outcome = SeriesOutcome(entry.series_uid, entry.patient, entry.modality, len(entry.files))
            report.series.append(outcome)
            if entry.patient in withdrawn:
                outcome.findings.append(Finding("withdrawn", "the patient has withdrawn"))
            else:
                _curate_series(outcome, entry.files, seg_by_series.get(entry.series_uid), out, index)
            if progress is not None:
                progress(index + 1, len(images))
        _write_outputs(report, out)
        run.counts = report.counts
    log.info("curated %d of %d series", report.counts["included"], report.counts["series"])
    return report
