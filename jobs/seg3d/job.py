"""seg3d job: federated 3D lesion segmentation (MONAI UNet, Dice-CE) built with NVFlare's recipe API.

``build_recipe(sites, params, work_dir)`` returns the recipe; the hub's runners execute it in the
simulator (one client per site home) or submit it to a provisioned server. Run locally::

    python jobs/seg3d/job.py --site site-a=/path/home-a --site site-b=/path/home-b --param rounds=2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

TEMPLATE = "seg3d"
HERE = Path(__file__).resolve().parent
DEFAULTS: dict[str, Any] = {
    "rounds": 4,
    "local_epochs": 3,
    "lr": 3e-3,
    "lr_schedule": "constant",
    "patch": [32, 32, 16],
    "channels": [8, 16, 32],
    "batch_size": 2,
    "aggregation": "fedavg",
    "fedprox_mu": 0.01,
    "cross_site_eval": True,
    "seed": 0,
    "device": None,
    "params_transfer": "full",
    #: Registry name the finished model is published under (default: the template name).
    "model_name": None,
}
AGGREGATIONS = ("fedavg", "fedprox", "fedopt")
LR_SCHEDULES = ("constant", "cosine")
#: NVFlare filter tables are keyed by task name (no wildcard): every task a client answers.
TASKS = ["train", "validate", "submit_model"]


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return value


def _check(p: dict[str, Any]) -> None:
    """Type and range checks: values end up on the clients' command line."""
    _int(p["rounds"], "rounds", 1, 1000)
    _int(p["local_epochs"], "local_epochs", 1, 1000)
    _int(p["batch_size"], "batch_size", 1, 64)
    _int(p["seed"], "seed", 0, 2**31 - 1)
    for name in ("lr", "fedprox_mu"):
        if isinstance(p[name], bool) or not isinstance(p[name], int | float) or not 0 < p[name] < 10:
            raise ValueError(f"{name} must be a number between 0 and 10")
    if not isinstance(p["patch"], list) or len(p["patch"]) != 3:
        raise ValueError("patch must be a list of 3 integers")
    for v in p["patch"]:
        _int(v, "patch", 8, 512)
    if not isinstance(p["channels"], list) or not 2 <= len(p["channels"]) <= 6:
        raise ValueError("channels must be a list of 2 to 6 integers")
    for v in p["channels"]:
        _int(v, "channels", 1, 512)
    if p["aggregation"] not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}")
    if p["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
    if p["device"] not in (None, "cpu", "cuda"):
        raise ValueError("device must be cpu, cuda or null")
    if p["params_transfer"] not in ("full", "diff"):
        raise ValueError("params_transfer must be full or diff (sites with percentile privacy need diff)")
    if p["params_transfer"] == "diff" and p["aggregation"] == "fedopt":
        raise ValueError("params_transfer diff is for fedavg and fedprox")
    name = p["model_name"]
    if name is not None and (
        not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name)
    ):
        raise ValueError("model_name must be lower-case letters, digits, '-' or '_' (max 63)")
    if not isinstance(p["cross_site_eval"], bool):
        raise ValueError("cross_site_eval must be true or false")


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``params``.

    Raises:
        ValueError: an unknown name or a value of the wrong type or range.
    """
    merged = dict(DEFAULTS)
    for key, value in (params or {}).items():
        if key not in DEFAULTS:
            raise ValueError(f"unknown seg3d parameter: {key}")
        merged[key] = value
    _check(merged)
    return merged


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


def _parse_param(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    """Run the job in the NVFlare simulator with one client per ``--site name=home``."""
    from nvflare.recipe.sim_env import SimEnv

    from site_node.training.site import SITE_MAP_ENV, write_site_map

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="client-name=site-home")
    parser.add_argument("--param", action="append", default=[], help="name=value (JSON value)")
    parser.add_argument("--workspace", type=Path, default=Path(tempfile.mkdtemp(prefix="seg3d-ws-")))
    args = parser.parse_args()
    homes = dict(item.split("=", 1) for item in args.site)
    # NVFlare copies the modules a job references into its custom/ folder without their __init__.py;
    # with an editable install those copies would shadow the real packages unless the root is on the path.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE.parents[1]), os.environ.get("PYTHONPATH")])
    )
    args.workspace.mkdir(parents=True, exist_ok=True)
    os.environ[SITE_MAP_ENV] = str(write_site_map(args.workspace / "site_map.json", homes))
    recipe = build_recipe(list(homes), dict(_parse_param(p) for p in args.param), args.workspace)
    env = SimEnv(clients=list(homes), num_threads=len(homes), workspace_root=str(args.workspace))
    run = recipe.execute(env)
    print(f"job finished; results in {run.get_result()}")


if __name__ == "__main__":
    main()
