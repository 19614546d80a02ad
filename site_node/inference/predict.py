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

#: Inference windows are this many training patches along each axis (256 x 256 x 64 for seg3d): the
#: network is fully convolutional, and fewer, larger windows with a small overlap cut the per-window
#: overhead and the recomputed margins. Measured on 6 held-out toy volumes (docs/inference.md): lesion
#: Dice 0.777 with these windows and with 4 patches / overlap 0.25, 0.739 with the training patch
#: itself, at 9.0 s, 15.5 s and 74 s.
WINDOW_SCALE = (8, 8, 4)
OVERLAP = 0.125


@dataclass
class Prediction:
    """A binary lesion mask in the volume's voxel order, and the seconds spent in the network."""

    mask: np.ndarray
    compute_s: float
    device: str


def window_size(patch: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """The sliding window: ``WINDOW_SCALE`` training patches, never larger than the volume (padded)."""
    return tuple(
        max(int(p), min(int(p) * s, -(-int(n) // int(p)) * int(p)))
        for p, s, n in zip(patch, WINDOW_SCALE, shape, strict=True)
    )


@torch.no_grad()
def segment(
    network: torch.nn.Module,
    array: np.ndarray,
    *,
    patch: Sequence[int],
    device: torch.device,
    sw_batch_size: int = 1,
) -> Prediction:
    """Run ``network`` over ``array`` (column, row, slice; HU) and return the lesion mask.

    Args:
        network: the model, on ``device``, in evaluation mode.
        array: the volume as curation builds it (the training data's voxel order and units).
        patch: the training patch size (sets the sliding window).
        device: where to run.
        sw_batch_size: windows per forward pass.
    """
    data = Compose(image_transforms())({"image": array[np.newaxis]})
    image = torch.as_tensor(data["image"]).unsqueeze(0).to(device)
    roi = window_size(patch, array.shape)
    started = time.perf_counter()
    logits = sliding_window_inference(image, roi, sw_batch_size, network, overlap=OVERLAP)
    mask = torch.argmax(logits, dim=1)[0].to(torch.uint8).cpu().numpy()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    compute_s = time.perf_counter() - started
    log.info(
        "segmented a %s volume in %.2f s on %s (window %s)",
        "x".join(map(str, array.shape)),
        compute_s,
        device.type,
        roi,
    )
    return Prediction(mask=mask, compute_s=compute_s, device=device.type)
