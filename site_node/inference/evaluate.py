"""Scoring a model on the site's labelled curated set (``site-node evaluate``, the ``evaluate`` job).

External validation as MedPerf runs it: the model travels to the data. The score uses the clinical
inference path itself (:func:`~site_node.inference.predict.segment`: the training pre-processing and
the sliding window), on every labelled series of the curated set. Only aggregates are returned —
mean and standard deviation of the per-case lesion Dice, and the number of cases — and a federated
result is refused when the site holds fewer cases than its floor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from common.errors import PrivacyError
from site_node.curation.readiness import dataset_version
from site_node.inference.predict import segment
from site_node.training.data import load_datalist

log = logging.getLogger(__name__)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Lesion Dice of two binary masks (1.0 when both are empty)."""
    p, t = pred > 0, truth > 0
    denominator = int(p.sum()) + int(t.sum())
    return 1.0 if denominator == 0 else 2.0 * int((p & t).sum()) / denominator


def score(
    network: torch.nn.Module, curated: Path, *, patch: Sequence[int], device: torch.device
) -> dict[str, Any]:
    """Aggregate lesion Dice of ``network`` over every labelled series of the curated set.

    Returns:
        ``dice`` (mean), ``dice_sd``, ``n_cases`` and the set's ``dataset_version``; no per-case value.
    """
    datalist = load_datalist(curated)
    entries = datalist["training"] + datalist["validation"]
    values = []
    for entry in entries:
        image = np.asarray(nib.load(entry["image"]).dataobj, dtype=np.float32)
        label = np.asarray(nib.load(entry["label"]).dataobj)
        values.append(dice(segment(network, image, patch=patch, device=device).mask, label))
    log.info("scored %d labelled series", len(values))
    return {
        "dice": float(np.mean(values)) if values else float("nan"),
        "dice_sd": float(np.std(values)) if values else float("nan"),
        "n_cases": len(values),
        "dataset_version": dataset_version(curated),
    }


def release(result: dict[str, Any], floor_k: int, site_id: str) -> dict[str, Any]:
    """The aggregate as it may leave the site: refused below the site's floor.

    Raises:
        PrivacyError: fewer cases than ``floor_k``.
    """
    if result["n_cases"] < floor_k:
        raise PrivacyError(
            f"refused by site {site_id}: fewer labelled cases than the site's floor", field="floor_k"
        )
    return {"dice": result["dice"], "dice_sd": result["dice_sd"]}
