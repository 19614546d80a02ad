"""The DICOM-SEG of a prediction: one segment per lesion (connected component), SNOMED CT coded."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from scipy import ndimage

from common import __version__
from site_node.inference.study import ImageStudy

log = logging.getLogger(__name__)

MANUFACTURER = "fedimaging site node"
SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902
SC_SERIES_NUMBER = 9903
#: Lesions kept as segments (largest first); smaller specks are left out of the SEG and the report.
MAX_SEGMENTS = 20
MIN_VOXELS = 8


@dataclass
class Lesion:
    """One segment: its number, voxel count and volume."""

    number: int
    voxels: int
    volume_ml: float
    slices: tuple[int, ...] = ()  # indices (slice order) of the source images the lesion is on


def _label(foreground: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected labels, computed on the foreground's bounding box only (masks are sparse)."""
    labels = np.zeros(foreground.shape, dtype=np.int32)
    axes = [np.flatnonzero(foreground.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    if not all(len(a) for a in axes):
        return labels, 0
    box = tuple(slice(int(a[0]), int(a[-1]) + 1) for a in axes)
    labels[box], count = ndimage.label(foreground[box], structure=np.ones((3, 3, 3), dtype=bool))
    return labels, int(count)


def split_lesions(mask: np.ndarray, voxel_ml: float) -> tuple[np.ndarray, list[Lesion]]:
    """Label connected lesions (26-connectivity), largest first, at most ``MAX_SEGMENTS``.

    Returns:
        A label volume (0 background, 1..n lesion numbers) and the lesions.
    """
    labels, count = _label(mask > 0)
    sizes = np.bincount(labels.ravel())[1:] if count else np.zeros(0, dtype=np.int64)
    order = [int(i) + 1 for i in np.argsort(-sizes, kind="stable") if sizes[i] >= MIN_VOXELS][:MAX_SEGMENTS]
    out = np.zeros(mask.shape, dtype=np.uint8)
    boxes = ndimage.find_objects(labels) if order else []
    lesions = []
    for number, component in enumerate(order, start=1):
        box = boxes[component - 1]  # work inside the component's bounding box, not the whole volume
        inside = labels[box] == component
        out[box][inside] = number
        voxels = int(sizes[component - 1])
        slices = tuple(box[2].start + int(k) for k in np.flatnonzero(inside.any(axis=(0, 1))))
        lesions.append(Lesion(number, voxels, round(voxels * voxel_ml, 3), slices))
    return out, lesions


def algorithm(name: str, version: int) -> hd.AlgorithmIdentificationSequence:
    """Algorithm identification: the model's name and version, family Artificial Intelligence."""
    return hd.AlgorithmIdentificationSequence(
        name=name, version=str(version), family=codes.cid7162.ArtificialIntelligence
    )


def _descriptions(lesions: list[Lesion], name: str, version: int) -> list[hd.seg.SegmentDescription]:
    numbers = [lesion.number for lesion in lesions] or [1]
    return [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=f"Lesion {n}",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm(name, version),
            tracking_uid=hd.UID(),
            tracking_id=f"lesion-{n}",
        )
        for n in numbers
    ]


def build_seg(
    study: ImageStudy, labels: np.ndarray, lesions: list[Lesion], name: str, version: int, site_id: str
) -> hd.seg.Segmentation:
    """A labelmap-free binary SEG referencing every source slice of the series.

    Args:
        study: the source series (slice order of ``labels``' last axis).
        labels: lesion numbers in (column, row, slice) voxel order.
        lesions: the segments (an empty list writes one empty "Lesion 1" segment: a finding of none).
        name: model name (algorithm identification).
        version: model version.
        site_id: written as the device serial number.
    """
    frames = np.ascontiguousarray(labels.transpose(2, 1, 0))  # (slice, row, column), like the sources
    numbers = [lesion.number for lesion in lesions]
    if numbers:
        pixel_array = np.stack([frames == n for n in numbers], axis=-1)
    else:
        pixel_array = np.zeros((*frames.shape, 1), dtype=bool)
    return hd.seg.Segmentation(
        source_images=study.datasets,
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(lesions, name, version),
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=f"{name}:{version}"[:64],
        software_versions=__version__,
        device_serial_number=site_id,
        series_description=f"AI segmentation {name} v{version}"[:64],
        omit_empty_frames=bool(numbers),
    )
