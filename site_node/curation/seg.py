"""Turn a DICOM Segmentation (SEG) object into a label volume aligned with its source series.

The SEG is matched to its image series through ReferencedSeriesSequence (UIDs that de-identification
remapped consistently). Each frame is placed on a slice by its referenced SOP instance or, failing
that, by its position along the series' slice normal; the label value is the segment number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from site_node.curation.findings import Finding
from site_node.curation.series import Volume

log = logging.getLogger(__name__)


@dataclass
class SegObject:
    """A SEG instance read from disk, with the series it references."""

    path: Path
    dataset: pydicom.Dataset
    referenced_series: list[str]


def read_seg(path: Path) -> SegObject | None:
    """Read a SEG instance; None when it is not readable."""
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError):
        return None
    refs = [str(item.get("SeriesInstanceUID", "")) for item in ds.get("ReferencedSeriesSequence", [])]
    return SegObject(path, ds, [r for r in refs if r])


def _frame_items(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    return list(ds.get("PerFrameFunctionalGroupsSequence", []))


def _frame_segment(item: pydicom.Dataset) -> int:
    seq = item.get("SegmentIdentificationSequence")
    return int(seq[0].ReferencedSegmentNumber) if seq else 1


def _frame_sop(item: pydicom.Dataset) -> str | None:
    for deriv in item.get("DerivationImageSequence", []):
        for src in deriv.get("SourceImageSequence", []):
            uid = src.get("ReferencedSOPInstanceUID")
            if uid:
                return str(uid)
    return None


def _frame_position(item: pydicom.Dataset) -> np.ndarray | None:
    seq = item.get("PlanePositionSequence")
    if not seq or "ImagePositionPatient" not in seq[0]:
        return None
    return np.array([float(v) for v in seq[0].ImagePositionPatient])


def _slice_index(item: pydicom.Dataset, volume: Volume, sop_index: dict[str, int]) -> int | None:
    sop = _frame_sop(item)
    if sop is not None and sop in sop_index:
        return sop_index[sop]
    position = _frame_position(item)
    if position is None:
        return None
    along = float(np.dot(volume.normal, position))
    distances = np.abs(volume.slice_positions - along)
    best = int(np.argmin(distances))
    half_step = abs(float(volume.affine_lps[:3, 2] @ volume.normal)) / 2
    return best if distances[best] <= half_step + 1e-3 else None


def label_volume(seg: SegObject, volume: Volume) -> tuple[np.ndarray | None, list[Finding]]:
    """Build the label volume of ``seg`` on the grid of ``volume``.

    Returns:
        The label array (uint8, same shape as the image; 0 = background) or None, and findings.
    """
    ds = seg.dataset
    findings: list[Finding] = []
    if str(ds.get("FrameOfReferenceUID", "")) != volume.frame_of_reference:
        return None, [Finding("seg_frame_of_reference", "SEG FrameOfReferenceUID differs from its series")]
    try:
        frames = ds.pixel_array
    except (ValueError, AttributeError):
        return None, [Finding("unreadable", "SEG PixelData could not be decoded")]
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    if frames.shape[1:] != (volume.array.shape[1], volume.array.shape[0]):
        return None, [Finding("seg_geometry", "SEG Rows/Columns differ from the series")]
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    sop_index = {uid: i for i, uid in enumerate(volume.sop_uids)}
    unplaced = 0
    for frame, item in zip(frames, _frame_items(ds), strict=False):
        index = _slice_index(item, volume, sop_index)
        if index is None:
            unplaced += 1
            continue
        mask = frame.T > 0
        labels[:, :, index][mask] = _frame_segment(item)
    if unplaced:
        findings.append(Finding("seg_geometry", f"{unplaced} SEG frame(s) match no slice of the series"))
        return None, findings
    if not labels.any():
        findings.append(Finding("empty_label", "the SEG marks no voxel"))
    return labels, findings
