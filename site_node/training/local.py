"""Training on one site's curated set alone (``site-node train-local``, benchmarks' single-site arm)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from site_node.training.data import DEFAULT_PATCH, make_loaders
from site_node.training.device import describe_device, select_device
from site_node.training.engine import evaluate, train_epochs
from site_node.training.model import DEFAULT_CHANNELS, SegUNet


def train_site(
    curated: Path,
    *,
    epochs: int,
    lr: float = 3e-3,
    device: str | None = None,
    patch: Sequence[int] = DEFAULT_PATCH,
    channels: Sequence[int] = DEFAULT_CHANNELS,
    seed: int = 0,
    lr_schedule: str = "constant",
) -> dict[str, Any]:
    """Train a fresh model for ``epochs`` and return its validation Dice, device and loss.

    ``lr_schedule`` (``constant`` or ``cosine``) spans all ``epochs``, as in a federated job of
    rounds x local epochs.
    """
    torch.manual_seed(seed)
    dev = select_device(device)
    train, val, n_train = make_loaders(curated, patch, seed=seed)
    model = SegUNet(channels=tuple(channels))
    result = train_epochs(model, train, epochs=epochs, lr=lr, device=dev, lr_schedule=lr_schedule)
    return {
        "val_dice": evaluate(model, val, device=dev, patch=patch),
        "device": describe_device(dev),
        "train_loss": result.mean_loss,
        "n_train": n_train,
        "model": model,
    }


def save_local_model(site: Any, name: str, model: torch.nn.Module, result: dict[str, Any]) -> Any:
    """Keep a locally trained model in the site's store as the next version of ``name``.

    Args:
        site: the :class:`~site_node.home.SiteContext`.
        name: model name.
        model: the trained :class:`SegUNet`.
        result: what :func:`train_site` reported (validation Dice, device, training cases).

    Returns:
        The :class:`~site_node.models.store.StoredModel`.
    """
    import tempfile

    from site_node.curation.readiness import dataset_version
    from site_node.models.store import models_dir, next_version, register

    home = site.settings.home
    staging = models_dir(home) / ".incoming"
    staging.mkdir(parents=True, exist_ok=True)
    card = {
        "metrics": {"val_dice": float(result["val_dice"]), "train_loss": float(result["train_loss"])},
        "model_args": {"channels": list(model.channels), "patch": list(DEFAULT_PATCH)},
        "dataset_versions": {site.settings.site_id: dataset_version(home / "curated")},
        "n_train": result["n_train"],
    }
    with tempfile.NamedTemporaryFile(dir=staging, suffix=".pt") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp.name)
        return register(
            site.engine,
            home,
            name=name,
            version=next_version(site.engine, name),
            source="local",
            weights=Path(tmp.name),
            template="seg3d",
            card=card,
        )
