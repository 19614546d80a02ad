"""An optional Secondary Capture overlay: the key slice with the lesions in red, for viewers
that cannot show DICOM-SEG. It carries BurnedInAnnotation YES (it is a picture of the result)."""

from __future__ import annotations

import highdicom as hd
import numpy as np

from site_node.inference.dicom_seg import MANUFACTURER, SC_SERIES_NUMBER
from site_node.inference.study import ImageStudy

WINDOW = (-600.0, 1500.0)  # lung window (centre, width) in HU


def key_slice(labels: np.ndarray) -> int:
    """The slice with the largest lesion area (the middle slice when there is none)."""
    areas = (labels > 0).sum(axis=(0, 1))
    return int(np.argmax(areas)) if areas.any() else labels.shape[2] // 2


def render(hu: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """RGB (rows, columns, 3) of one slice in the lung window with lesions blended in red.

    Args:
        hu: one slice, (column, row), in HU.
        lesion: its lesion mask, same shape.
    """
    centre, width = WINDOW
    grey = np.clip((hu.T - (centre - width / 2)) / width, 0, 1) * 255
    rgb = np.repeat(grey[..., np.newaxis], 3, axis=-1)
    red = lesion.T > 0
    rgb[red] = 0.5 * rgb[red] + 0.5 * np.array([255.0, 0.0, 0.0])
    return rgb.astype(np.uint8)


def build_overlay(study: ImageStudy, labels: np.ndarray, name: str, version: int) -> hd.sc.SCImage:
    """The Secondary Capture of the key slice (patient and study copied from its source image)."""
    index = key_slice(labels)
    source = study.datasets[index]
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=render(study.volume.array[:, :, index], labels[:, :, index]),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=hd.UID(),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        pixel_spacing=tuple(float(v) for v in source.PixelSpacing),
        patient_orientation=("L", "P"),
    )
    image.SeriesDescription = f"AI overlay {name} v{version}"[:64]
    image.BurnedInAnnotation = "YES"
    # Type 2C: dciodvfy cannot evaluate "paired body part" for a capture; empty means not applicable
    image.Laterality = ""
    image.ImageComments = f"lesions in red from {name} v{version}; not for diagnosis alone"[:10240]
    return image
