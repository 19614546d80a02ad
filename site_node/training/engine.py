"""One local training run and one evaluation: Dice-CE loss, Dice metric, optional FedProx term."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot
from torch import nn

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainResult:
    """What one local training run did."""

    steps: int
    mean_loss: float
    first_loss: float
    last_loss: float


def make_loss() -> nn.Module:
    """Dice + cross-entropy on softmax outputs with integer labels."""
    return DiceCELoss(to_onehot_y=True, softmax=True)


def scheduled_lr(lr: float, schedule: str, epoch: int, total_epochs: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based) of a run of ``total_epochs``.

    Args:
        lr: the peak (initial) learning rate.
        schedule: ``constant``, or ``cosine`` (half a cosine from ``lr`` towards 0 over the run).
        epoch: the epoch about to run, counted over the whole run (a federated client counts the
            epochs of earlier rounds too, so every arm follows the same curve per epoch).
        total_epochs: epochs in the whole run.

    Raises:
        ValueError: an unknown schedule.
    """
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * min(epoch, total_epochs) / max(total_epochs, 1)))
    raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")


def _proximal(model: nn.Module, anchor: dict[str, torch.Tensor] | None, mu: float) -> torch.Tensor | float:
    """FedProx term mu/2 * ||w - w_global||^2 (0 when not requested)."""
    if anchor is None or mu <= 0:
        return 0.0
    total = sum(((p - anchor[name]) ** 2).sum() for name, p in model.named_parameters() if name in anchor)
    return 0.5 * mu * total


def train_epochs(
    model: nn.Module,
    loader: Iterable[dict[str, torch.Tensor]],
    *,
    epochs: int,
    lr: float,
    device: torch.device,
    anchor: dict[str, torch.Tensor] | None = None,
    mu: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    lr_schedule: str = "constant",
    first_epoch: int = 0,
    total_epochs: int | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``epochs`` passes over ``loader`` with Adam.

    Args:
        model: the network (moved to ``device``).
        loader: batches with ``image`` and ``label``.
        epochs: local epochs.
        lr: learning rate.
        device: where to train.
        anchor: global weights for the FedProx term (None: plain training).
        mu: FedProx coefficient.
        optimizer: an optimizer to keep using (a federated client keeps its Adam state across
            rounds); a fresh Adam with ``lr`` when None.
        lr_schedule: ``constant`` or ``cosine`` (see :func:`scheduled_lr`).
        first_epoch: index of this call's first epoch in the whole run (federated: round x epochs).
        total_epochs: epochs in the whole run (``epochs`` when None).
    """
    model.to(device).train()
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = make_loss()
    losses: list[float] = []
    total = total_epochs or epochs
    for epoch in range(first_epoch, first_epoch + epochs):
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(lr, lr_schedule, epoch, total)
        for batch in loader:
            image, label = batch["image"].to(device), batch["label"].to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(image), label) + _proximal(model, anchor, mu)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    if not losses:
        return TrainResult(0, float("nan"), float("nan"), float("nan"))
    return TrainResult(len(losses), sum(losses) / len(losses), losses[0], losses[-1])


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[dict[str, torch.Tensor]],
    *,
    device: torch.device,
    patch: Sequence[int],
) -> float:
    """Mean lesion Dice of ``model`` over ``loader`` (sliding-window inference on whole volumes)."""
    model.to(device).eval()
    metric = DiceMetric(include_background=False, reduction="mean", ignore_empty=False)
    seen = 0
    for batch in loader:
        image, label = batch["image"].to(device), batch["label"].to(device)
        logits = sliding_window_inference(image, tuple(patch), 4, model, overlap=0.25)
        pred = torch.argmax(logits, dim=1, keepdim=True)
        metric(y_pred=one_hot(pred, 2), y=one_hot((label > 0).long(), 2))
        seen += 1
    if not seen:
        return float("nan")
    return float(metric.aggregate().item())
