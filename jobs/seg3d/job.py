"""seg3d job: federated 3D lesion segmentation (MONAI UNet, Dice-CE) built with NVFlare's recipe API.

``build_recipe(sites, params, work_dir)`` returns the recipe; the hub's runners execute it in the
simulator (one client per site home) or submit it to a provisioned server. Run locally::

    python jobs/seg3d/job.py --site site-a=/path/home-a --site site-b=/path/home-b --param rounds=2
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common.job_params import Seg3dParams, validate_params

TEMPLATE = "seg3d"
HERE = Path(__file__).resolve().parent
DEFAULTS: dict[str, Any] = Seg3dParams().model_dump(mode="json")
#: NVFlare filter tables are keyed by task name (no wildcard): every task a client answers.
TASKS = ["train", "validate", "submit_model"]


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``params``, checked against :class:`common.job_params.Seg3dParams`.

    Raises:
        InputError: an unknown name or a value of the wrong type or out of bounds.
    """
    return validate_params(TEMPLATE, params or {})


def _train_args(p: dict[str, Any]) -> str:
    args = [
        f"--epochs {int(p['local_epochs'])}",
        f"--lr {float(p['lr'])}",
        "--patch " + ",".join(str(int(v)) for v in p["patch"]),
        "--channels " + ",".join(str(int(v)) for v in p["channels"]),
        f"--batch-size {int(p['batch_size'])}",
        f"--seed {int(p['seed'])}",
        f"--lr-schedule {p['lr_schedule']}",
    ]
    if p.get("device"):
        args.append(f"--device {p['device']}")
    return " ".join(args)


def build_recipe(sites: list[str], params: dict[str, Any] | None = None, work_dir: Path | None = None) -> Any:
    """Build the seg3d recipe for ``sites`` (client names) with ``params`` over :data:`DEFAULTS`."""
    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
    from nvflare.app_opt.pt.recipes.fedopt import FedOptRecipe
    from nvflare.app_opt.pt.recipes.fedprox import FedProxRecipe
    from nvflare.client.config import TransferType
    from nvflare.recipe.utils import add_cross_site_evaluation

    from jobs.metrics_recorder import RoundMetricsRecorder
    from site_node.training.approval import stage_client_files
    from site_node.training.model import SegUNet
    from site_node.training.privacy_filter import SiteOutboundFilter

    p = resolve_params(params)
    common = {
        "name": TEMPLATE,
        "model": SegUNet(channels=tuple(p["channels"])),
        "min_clients": len(sites),
        "num_rounds": int(p["rounds"]),
        "train_script": str(HERE / "client.py"),
        "train_args": _train_args(p),
    }
    if p["aggregation"] != "fedopt":
        transfer = TransferType.DIFF if p["params_transfer"] == "diff" else TransferType.FULL
        common["params_transfer_type"] = transfer
    if p["aggregation"] == "fedopt":
        recipe = FedOptRecipe(
            **common,
            optimizer_args={"path": "torch.optim.SGD", "args": {"lr": 1.0, "momentum": 0.6}},
        )
    elif p["aggregation"] == "fedprox":
        recipe = FedProxRecipe(**common, key_metric="val_dice", fedprox_mu=float(p["fedprox_mu"]))
    else:
        recipe = FedAvgRecipe(**common, key_metric="val_dice")
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="seg3d-"))
    recipe.add_client_file(str(stage_client_files(HERE, TEMPLATE, work_dir)))
    # Production sites also make this filter mandatory in privacy.json; it acts once per message.
    recipe.add_client_output_filter(SiteOutboundFilter(), tasks=TASKS)
    recipe.add_server_input_filter(RoundMetricsRecorder(), tasks=TASKS)
    # NVFlare 2.9 offers cross-site evaluation for FedAvg-family recipes only (not FedOpt).
    if p["cross_site_eval"] and p["aggregation"] != "fedopt":
        add_cross_site_evaluation(recipe)
    return recipe


def main() -> None:
    """Run the job in the NVFlare simulator with one client per ``--site name=home``."""
    from jobs.local_run import run_locally

    run_locally(TEMPLATE, __doc__.splitlines()[0], build_recipe)


if __name__ == "__main__":
    main()
