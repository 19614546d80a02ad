"""Segment a volume: the training pre-processing, then MONAI sliding-window inference (torch)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.transforms import Compose

from site_node.training.data import image_transforms

log = logging.getLogger(__name__)

#: Inference windows are this many training patches along each axis (64 x 64 x 32 for seg3d), run
#: ``SW_BATCH_SIZE`` at a time. With overlap 0.125 every window size recomputes about the same share of
#: voxels, so the choice is per-pass overhead against cache-sized activations. Paired runs
#: (benchmarks/infer_window_bench.py, docs/inference.md): same lesion Dice as 256 x 256 x 64 windows on
#: held-out toy volumes, and the lowest median and best time on a 512 x 512 x 64 volume (noisy machine).
WINDOW_SCALE = (2, 2, 2)
OVERLAP = 0.125
#: Windows per forward pass (16 windows of 64 x 64 x 32 hold as many voxels as one 256 x 256 x 64).
SW_BATCH_SIZE = 16


@dataclass
class Prediction:
    """A binary lesion mask in the volume's voxel order, and the seconds spent in the network."""

    mask: np.ndarray
    compute_s: float
    device: str
    prepare_s: float = 0.0  # the training pre-processing
    decide_s: float = 0.0  # logits -> mask


def window_size(
    patch: Sequence[int], shape: Sequence[int], scale: Sequence[int] = WINDOW_SCALE
) -> tuple[int, ...]:
    """The sliding window: ``scale`` training patches, never larger than the volume (padded)."""
    return tuple(
        max(int(p), min(int(p) * s, -(-int(n) // int(p)) * int(p)))
        for p, s, n in zip(patch, scale, shape, strict=True)
    )


def decide(logits: torch.Tensor) -> np.ndarray:
    """The class of each voxel, as uint8 (one volume of the batch).

    For two classes a comparison gives the argmax (ties go to background, as argmax's first index)
    at a fraction of the cost: ``torch.argmax`` over a 2 x 512 x 512 x 200 float volume takes seconds
    on a CPU.
    """
    if logits.shape[1] == 2:
        return (logits[0, 1] > logits[0, 0]).to(torch.uint8).cpu().numpy()
    return torch.argmax(logits, dim=1)[0].to(torch.uint8).cpu().numpy()


@torch.no_grad()
def segment(
    network: torch.nn.Module,
    array: np.ndarray,
    *,
    patch: Sequence[int],
    device: torch.device,
    sw_batch_size: int = SW_BATCH_SIZE,
    scale: Sequence[int] = WINDOW_SCALE,
    overlap: float = OVERLAP,
) -> Prediction:
    """Run ``network`` over ``array`` (column, row, slice; HU) and return the lesion mask.

    Args:
        network: the model, on ``device``, in evaluation mode.
        array: the volume as curation builds it (the training data's voxel order and units).
        patch: the training patch size (sets the sliding window).
        device: where to run.
        sw_batch_size: windows per forward pass.
        scale: the window, in training patches along each axis.
        overlap: the windows' overlap (fraction).
    """
    prepared = time.perf_counter()
    data = Compose(image_transforms())({"image": array[np.newaxis]})
    image = torch.as_tensor(data["image"]).unsqueeze(0).to(device)
    roi = window_size(patch, array.shape, scale)
    started = time.perf_counter()
    logits = sliding_window_inference(image, roi, sw_batch_size, network, overlap=overlap)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    compute_s = time.perf_counter() - started  # the network's forward passes and the windows' blending
    mask = decide(logits)
    decide_s = time.perf_counter() - started - compute_s
    log.info(
        "segmented a %s volume in %.2f s on %s (window %s)",
        "x".join(map(str, array.shape)),
        compute_s,
        device.type,
        roi,
    )
    return Prediction(
        mask=mask, compute_s=compute_s, device=device.type, prepare_s=started - prepared, decide_s=decide_s
    )
