"""A tiny curated set (NIfTI + datalist) with spherical lesions, for tests and quick demos.

It stands in for ``site-node synth`` + ``deid`` + ``curate`` where only training is under test.
``style`` shifts intensity and lesion size so sites differ (non-IID).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from site_node.curation.curate import split_patients

STYLES = {"a": (0.0, 1.0, 3.0), "b": (40.0, 1.3, 4.0), "c": (-30.0, 0.8, 2.5)}


def toy_volume(
    rng: np.random.Generator, shape: tuple[int, int, int], style: str
) -> tuple[np.ndarray, np.ndarray]:
    """One CT-like volume (HU) with 1-2 bright spherical lesions, and its label."""
    offset, contrast, radius = STYLES[style]
    image = rng.normal(40 + offset, 20, shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    grid = np.indices(shape).astype(np.float32)
    for _ in range(int(rng.integers(1, 3))):
        centre = [rng.uniform(radius + 2, s - radius - 2) for s in shape]
        r = radius * rng.uniform(0.8, 1.2)
        inside = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= r**2
        label[inside] = 1
        image[inside] += 120 * contrast
    return image, label


def write_toy_curated(
    home: Path,
    patients: int = 4,
    seed: int = 0,
    style: str = "a",
    shape: tuple[int, int, int] = (32, 32, 16),
) -> Path:
    """Write ``<home>/curated`` with ``patients`` labelled volumes and a patient-split datalist."""
    rng = np.random.default_rng(seed)
    curated = home / "curated"
    (curated / "images").mkdir(parents=True, exist_ok=True)
    (curated / "labels").mkdir(parents=True, exist_ok=True)
    names = [f"{style}{seed}-{i:03d}" for i in range(patients)]
    val = split_patients(names)
    datalist: dict[str, list[dict[str, str]]] = {"training": [], "validation": []}
    affine = np.diag([1.5, 1.5, 2.5, 1.0])
    for i, name in enumerate(names):
        image, label = toy_volume(rng, shape, style)
        nib.save(nib.Nifti1Image(image, affine), str(curated / "images" / f"{i:04d}.nii.gz"))
        nib.save(nib.Nifti1Image(label, affine), str(curated / "labels" / f"{i:04d}.nii.gz"))
        split = "validation" if name in val else "training"
        datalist[split].append(
            {"image": f"images/{i:04d}.nii.gz", "label": f"labels/{i:04d}.nii.gz", "patient": name}
        )
    (curated / "datalist.json").write_text(json.dumps(datalist, indent=2))
    return curated
