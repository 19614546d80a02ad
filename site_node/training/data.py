"""The site's curated set as MONAI datasets; every path stays inside the site's curated folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import CacheDataset, DataLoader
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    RandCropByPosNegLabeld,
    RandFlipd,
    SpatialPadd,
)

from common.errors import InputError, PermissionDeniedError

log = logging.getLogger(__name__)

DEFAULT_PATCH = (32, 32, 16)


class BinarizeLabeld(MapTransform):
    """Any segment number becomes lesion (1); background stays 0."""

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key in self.key_iterator(out):
            out[key] = (out[key] > 0).to(torch.float32)
        return out


def load_datalist(curated: Path) -> dict[str, list[dict[str, str]]]:
    """Read ``datalist.json`` and resolve its paths, refusing any that leave ``curated``.

    Raises:
        InputError: no datalist.
        PermissionDeniedError: an entry points outside the site's curated folder.
    """
    root = curated.resolve()
    path = root / "datalist.json"
    if not path.exists():
        raise InputError("no curated datalist; run 'site-node curate'", field="curated/datalist.json")
    datalist = json.loads(path.read_text())
    resolved: dict[str, list[dict[str, str]]] = {}
    for split in ("training", "validation"):
        entries = []
        for item in datalist.get(split, []):
            entry = {}
            for key in ("image", "label"):
                full = (root / item[key]).resolve()
                if not full.is_relative_to(root):
                    raise PermissionDeniedError(
                        "a datalist entry points outside the site's curated folder", field=f"{split}.{key}"
                    )
                entry[key] = str(full)
            entries.append(entry)
        resolved[split] = entries
    return resolved


def image_transforms() -> list[Any]:
    """The intensity pre-processing every image gets, in training, validation and clinical inference.

    Input: ``{"image": channel-first array}`` in stored units (HU for CT), voxel order (column,
    row, slice) as curation writes it. Inference (:mod:`site_node.inference`) runs exactly these.
    """
    return [EnsureTyped(keys="image", dtype=torch.float32), NormalizeIntensityd(keys="image")]


def _base_transforms(patch: Sequence[int]) -> list[Any]:
    keys = ["image", "label"]
    return [
        LoadImaged(keys=keys),
        EnsureChannelFirstd(keys=keys),
        EnsureTyped(keys="label", dtype=torch.float32),
        *image_transforms(),
        BinarizeLabeld(keys="label"),
        SpatialPadd(keys=keys, spatial_size=tuple(patch)),
    ]


def train_transforms(patch: Sequence[int], samples: int = 2) -> Compose:
    """Load, normalise, crop patches around lesions and background, random flips."""
    return Compose(
        _base_transforms(patch)
        + [
            RandCropByPosNegLabeld(
                keys=["image", "label"],
                label_key="label",
                spatial_size=tuple(patch),
                pos=1,
                neg=1,
                num_samples=samples,
            ),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
        ]
    )


def val_transforms(patch: Sequence[int]) -> Compose:
    """Load and normalise whole volumes (validation uses sliding-window inference)."""
    return Compose(_base_transforms(patch))


def make_loaders(
    curated: Path,
    patch: Sequence[int] = DEFAULT_PATCH,
    batch_size: int = 2,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader, int]:
    """Training and validation loaders over the site's curated set.

    Returns:
        (train loader, validation loader, number of training volumes).
    """
    datalist = load_datalist(curated)
    if not datalist["training"]:
        raise InputError("the curated set has no training series", field="curated/datalist.json")
    transforms = train_transforms(patch)
    transforms.set_random_state(seed)
    train_ds = CacheDataset(datalist["training"], transforms, cache_rate=1.0, num_workers=0, progress=False)
    val_ds = CacheDataset(
        datalist["validation"], val_transforms(patch), cache_rate=1.0, num_workers=0, progress=False
    )
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(train_ds, batch_size=batch_size, shuffle=True, num_workers=0, generator=generator)
    val = DataLoader(val_ds, batch_size=1, shuffle=False, num_workers=0)
    log.info("datasets: %d training, %d validation volumes", len(train_ds), len(val_ds))
    return train, val, len(train_ds)
