"""The body of the ``evaluate`` job's client: receive the model, score it, send aggregates only.

``jobs/evaluate/client.py`` parses its arguments and calls :func:`run_eval_client`. The client binds
to its own site home, checks the job is approved and the curated set ready, and answers the
server's ``validate`` task with the aggregate score, or with a refusal below the site's floor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from common.config import load_site_settings
from common.errors import PrivacyError
from site_node.inference.evaluate import release, score
from site_node.training.client_loop import _refuse_all, admission
from site_node.training.device import select_device
from site_node.training.model import SegUNet
from site_node.training.privacy_filter import REFUSED_KEY

log = logging.getLogger(__name__)


def run_eval_client(
    channels: tuple[int, ...], patch: tuple[int, int, int], device: str | None, custom_dir: Path
) -> None:
    """Answer the server's evaluation task(s) until the job ends."""
    import nvflare.client as flare

    flare.init()
    home, refusal = admission(flare.get_site_name(), custom_dir)
    if refusal:
        log.warning("%s", refusal)
        _refuse_all(flare, refusal)
        return
    settings = load_site_settings(home)
    dev = select_device(device)
    while flare.is_running():
        incoming = flare.receive()
        if incoming is None:
            break
        network = SegUNet(channels=channels)
        network.load_state_dict({k: torch.as_tensor(v) for k, v in incoming.params.items()})
        result = score(network.to(dev).eval(), home / "curated", patch=patch, device=dev)
        meta: dict[str, Any] = {"n_cases": result["n_cases"], "dataset_version": result["dataset_version"]}
        try:
            metrics = release(result, settings.floor_k, settings.site_id)
        except PrivacyError as exc:
            flare.send(
                flare.FLModel(metrics={}, meta={**meta, REFUSED_KEY: exc.public_message, "n_cases": None})
            )
            continue
        flare.send(flare.FLModel(metrics=metrics, meta=meta))
