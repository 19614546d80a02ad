"""The body of a seg3d client: NVFlare Client API loop around the site's training step.

``jobs/seg3d/client.py`` parses its arguments and calls :func:`run_client`. The client binds to its
own site home only, checks the job is approved and the curated set ready, then answers the
server's tasks: train (after validating the received global model), evaluate, submit model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from common.config import load_site_settings
from common.errors import ConflictError, PermissionDeniedError
from site_node.curation.readiness import dataset_version, require_ready
from site_node.training.approval import check_approved, find_custom_dir, identify_job
from site_node.training.data import DEFAULT_PATCH, make_loaders
from site_node.training.device import describe_device, select_device
from site_node.training.engine import evaluate, scheduled_lr, train_epochs
from site_node.training.job_policy import check_job_policy
from site_node.training.model import DEFAULT_CHANNELS, SegUNet
from site_node.training.privacy_filter import REFUSED_KEY
from site_node.training.site import resolve_site_home

log = logging.getLogger(__name__)


@dataclass
class ClientConfig:
    """Training parameters of one job (identical at every site)."""

    epochs: int = 1
    lr: float = 1e-3
    patch: tuple[int, int, int] = DEFAULT_PATCH
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    batch_size: int = 2
    device: str | None = None
    seed: int = 0
    lr_schedule: str = "constant"
    model_args: dict[str, Any] = field(default_factory=dict)


def config_params(config: ClientConfig) -> dict[str, Any]:
    """The job parameters this client trains with, as the site's job policy names them."""
    return {"local_epochs": config.epochs, "patch": list(config.patch), "batch_size": config.batch_size}


def admission(
    client_name: str, custom_dir: Path, config: ClientConfig | None = None
) -> tuple[Path, str | None]:
    """The client's own site home, and the refusal message when the site refuses the job.

    The job must be approved, its training parameters inside the site's job policy, and the curated
    set ready.
    """
    home = resolve_site_home(client_name)
    settings = load_site_settings(home)
    try:
        job = identify_job(find_custom_dir(custom_dir))
        check_approved(settings, job)
        if config is not None:
            check_job_policy(settings, job.template, config_params(config))
        require_ready(home / "curated", settings.site_id)
    except (PermissionDeniedError, ConflictError) as exc:
        return home, exc.public_message
    return home, None


def _to_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def epoch_span(incoming: Any, epochs: int) -> tuple[int, int | None]:
    """Where this round's local epochs sit in the whole job: (first epoch, total epochs).

    The learning-rate schedule runs over rounds x local epochs, like a centralized run of the same
    number of epochs. Total is None when the server did not say how many rounds there are.
    """
    start = incoming.start_round or 0
    current = incoming.current_round if incoming.current_round is not None else start
    if not incoming.total_rounds:
        return (current - start) * epochs, None
    return (current - start) * epochs, incoming.total_rounds * epochs


def run_client(config: ClientConfig, custom_dir: Path) -> None:
    """Run the NVFlare Client API loop until the server ends the job.

    Args:
        config: the job's training parameters.
        custom_dir: the folder holding client.py and the job manifest.
    """
    import nvflare.client as flare

    flare.init()
    client_name = flare.get_site_name()
    home, refusal = admission(client_name, custom_dir, config)
    settings = load_site_settings(home)
    if refusal:
        log.warning("%s", refusal)
        _refuse_all(flare, refusal)
        return
    torch.manual_seed(config.seed)
    device = select_device(config.device)
    model = SegUNet(channels=config.channels)
    train, val, n_train = make_loaders(home / "curated", config.patch, config.batch_size, config.seed)
    local_state = _to_cpu(model.state_dict())
    model.to(device)
    # one optimizer for the whole job: its state carries over while each round starts from the global weights
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    version = dataset_version(home / "curated")
    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        refusal = rounds_refusal(settings, incoming)
        if refusal:  # the server asks for more rounds than the site accepts: stop before training
            log.warning("%s", refusal)
            flare.send(flare.FLModel(params={}, meta={REFUSED_KEY: refusal}))
            _refuse_all(flare, refusal)
            return
        if flare.is_submit_model():
            flare.send(flare.FLModel(params=local_state))
            continue
        model.load_state_dict(incoming.params)
        started = time.perf_counter()
        dice = evaluate(model, val, device=device, patch=config.patch)
        val_s = time.perf_counter() - started
        if flare.is_evaluate():
            flare.send(flare.FLModel(metrics={"val_dice": dice}))
            continue
        anchor = {k: v.detach().clone().to(device) for k, v in model.state_dict().items()}
        mu = float((incoming.meta or {}).get("fedprox_mu") or 0.0)
        first_epoch, total_epochs = epoch_span(incoming, config.epochs)
        schedule = config.lr_schedule if total_epochs else "constant"
        if schedule != config.lr_schedule:
            log.warning("the server sent no total rounds; training at a constant learning rate")
        started = time.perf_counter()
        result = train_epochs(
            model,
            train,
            epochs=config.epochs,
            lr=config.lr,
            device=device,
            anchor=anchor if mu > 0 else None,
            mu=mu,
            optimizer=optimizer,
            lr_schedule=schedule,
            first_epoch=first_epoch,
            total_epochs=total_epochs,
        )
        train_s = time.perf_counter() - started
        local_state = _to_cpu(model.state_dict())
        log.info(
            "round %s: val_dice(global)=%.4f train_loss=%.4f lr=%.2e on %s",
            incoming.current_round,
            dice,
            result.mean_loss,
            scheduled_lr(config.lr, schedule, first_epoch, total_epochs or config.epochs),
            device.type,
        )
        flare.send(
            flare.FLModel(
                params=local_state,
                current_round=incoming.current_round,
                metrics={"val_dice": dice, "train_loss": result.mean_loss},
                meta={
                    "NUM_STEPS_CURRENT_ROUND": result.steps,
                    "device": describe_device(device),
                    "n_train": n_train,
                    "train_s": round(train_s, 3),
                    "val_s": round(val_s, 3),
                    "dataset_version": version,
                },
            )
        )


def rounds_refusal(settings: Any, incoming: Any) -> str | None:
    """The refusal when the job's rounds (total, or the current one) exceed the site's ``max_rounds``."""
    total = incoming.total_rounds
    current = incoming.current_round
    rounds = max(int(total or 0), int(current or 0) + 1 if current is not None else 0)
    try:
        check_job_policy(settings, "seg3d", {"rounds": rounds})
    except PermissionDeniedError as exc:
        return exc.public_message
    return None


def _refuse_all(flare: Any, refusal: str) -> None:
    """Answer every task with an empty result that carries only the refusal."""
    while flare.is_running():
        if flare.receive() is None:
            break
        flare.send(flare.FLModel(params={}, meta={REFUSED_KEY: refusal}))
