"""Device selection: the site's GPU when there is one, otherwise the CPU — and say which."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def select_device(prefer: str | None = None) -> torch.device:
    """Pick CUDA when available (or ``prefer`` when given), otherwise CPU, and log the choice.

    Args:
        prefer: ``"cpu"`` or ``"cuda"`` to force a device; None chooses automatically.
    """
    if prefer == "cpu":
        device = torch.device("cpu")
    elif prefer == "cuda" or torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        device = torch.device("cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    log.info("training on %s (%s)", device.type, name)
    return device


def describe_device(device: torch.device) -> str:
    """A short human-readable name of ``device`` for metrics and reports."""
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else "cpu"
