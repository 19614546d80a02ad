"""Rebuild a stored model's network and load its weights (torch)."""

from __future__ import annotations

from typing import Any

import torch

from common.errors import InputError
from site_node.models.store import StoredModel
from site_node.training.data import DEFAULT_PATCH
from site_node.training.model import DEFAULT_CHANNELS, SegUNet


def _state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """A plain state dict from a file saved by torch or by NVFlare's persistor (``{"model": ...}``)."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise InputError("the model file holds no weights", field="model")
    return {str(k): torch.as_tensor(v) for k, v in checkpoint.items()}


def patch_of(model: StoredModel) -> tuple[int, int, int]:
    """The training patch size recorded with the model (the template default otherwise)."""
    patch = model.model_args.get("patch") or DEFAULT_PATCH
    return (int(patch[0]), int(patch[1]), int(patch[2]))


def load_weights_file(path: Any, channels: Any = None) -> SegUNet:
    """Build a :class:`SegUNet` and load ``path`` into it (strict: every weight must fit).

    Raises:
        InputError: the file is not a checkpoint of this network.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a file that is not a checkpoint
        raise InputError("the model file is not a PyTorch checkpoint", field="model") from None
    network = SegUNet(channels=tuple(channels or DEFAULT_CHANNELS))
    try:
        network.load_state_dict(_state_dict(checkpoint), strict=True)
    except RuntimeError:
        raise InputError("the weights do not fit the template's network (channels?)", field="model") from None
    return network


def load_network(model: StoredModel, device: torch.device) -> SegUNet:
    """The stored model's network on ``device``, in evaluation mode."""
    network = load_weights_file(model.path, model.model_args.get("channels"))
    return network.to(device).eval()
