"""One identified study read for inference: its image series as a checked volume and its datasets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from common.errors import InputError
from site_node.curation.series import Volume, assemble_datasets

log = logging.getLogger(__name__)

#: Modalities the segmentation templates were trained on.
INFER_MODALITIES = ("CT",)


@dataclass
class ImageStudy:
    """The series a model runs on: its volume and its instances in slice order."""

    volume: Volume
    datasets: list[pydicom.Dataset]  # ordered as volume.sop_uids (slice order)

    @property
    def study_uid(self) -> str:
        """StudyInstanceUID (identifying: never logged)."""
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def accession(self) -> str:
        """AccessionNumber (identifying: never logged)."""
        return str(self.datasets[0].get("AccessionNumber", "") or "")


def _pick_series(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The largest series of an inferable modality (one study only)."""
    studies = {str(ds.get("StudyInstanceUID", "")) for ds in datasets}
    if len(studies) != 1:
        raise InputError("the input must hold exactly one study", field="StudyInstanceUID")
    series: dict[str, list[pydicom.Dataset]] = {}
    for ds in datasets:
        if str(ds.get("Modality", "")) in INFER_MODALITIES and "PixelData" in ds:
            series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    if not series:
        raise InputError(
            f"the study has no {'/'.join(INFER_MODALITIES)} image series to run the model on",
            field="Modality",
        )
    return max(series.values(), key=len)


def study_from_datasets(datasets: list[pydicom.Dataset]) -> ImageStudy:
    """Assemble the study's image series (the curation checks: geometry, gaps, duplicates).

    Raises:
        InputError: no single study, no image series, or a series that fails the volume checks.
    """
    chosen = _pick_series(datasets)
    volume, findings = assemble_datasets(chosen)
    if volume is None:
        codes = ", ".join(sorted({f.code for f in findings if f.failing})) or "unreadable"
        raise InputError(f"the image series cannot be assembled into a volume ({codes})", field="series")
    by_uid = {str(ds.SOPInstanceUID): ds for ds in chosen}
    return ImageStudy(volume, [by_uid[uid] for uid in volume.sop_uids])


def read_study_folder(folder: Path) -> ImageStudy:
    """Read every DICOM file under ``folder`` (one study) and assemble its image series.

    Raises:
        InputError: the folder is missing or holds no usable study.
    """
    if not folder.is_dir():
        raise InputError("the input folder does not exist", field="input")
    datasets = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            datasets.append(pydicom.dcmread(path))
        except (InvalidDicomError, OSError, ValueError):
            continue
    if not datasets:
        raise InputError("the input folder holds no DICOM file", field="input")
    return study_from_datasets(datasets)
