"""evaluate job: federated evaluation (external validation) of a registry model at several sites.

The hub resolves ``model=NAME[:VERSION]`` to the registry's weights (``checkpoint``) and network
arguments; NVFlare's FedEval recipe sends the model to each site, whose client scores it on its
labelled curated set and sends back aggregates only (mean and SD of lesion Dice, number of cases),
through the site's outbound filter and ledger, and only when the site holds at least its floor of
cases. Run locally::

    python jobs/evaluate/job.py --site site-a=/path/home-a --param checkpoint=/abs/model.pt
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.job_params import validate_params

TEMPLATE = "evaluate"
HERE = Path(__file__).resolve().parent
TASKS = ["validate"]


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` checked against :class:`common.job_params.EvaluateParams`.

    Raises:
        InputError: an unknown name, a value of the wrong type or range, or a checkpoint that is not
            an absolute path (the hub sets it from the registry).
    """
    merged = validate_params(TEMPLATE, params or {})
    if not Path(merged["checkpoint"]).is_absolute():
        raise InputError(
            "checkpoint must be the absolute path of the model's weights", field="params.checkpoint"
        )
    return merged


def _eval_args(p: dict[str, Any]) -> str:
    args = [
        "--channels " + ",".join(str(int(v)) for v in p["channels"]),
        "--patch " + ",".join(str(int(v)) for v in p["patch"]),
    ]
    if p.get("device"):
        args.append(f"--device {p['device']}")
    return " ".join(args)


def build_recipe(sites: list[str], params: dict[str, Any] | None = None, work_dir: Path | None = None) -> Any:
    """Build the FedEval recipe for ``sites`` (client names)."""
    from nvflare.app_opt.pt.recipes.fedeval import FedEvalRecipe

    from jobs.metrics_recorder import RoundMetricsRecorder
    from site_node.training.approval import stage_client_files
    from site_node.training.model import SegUNet
    from site_node.training.privacy_filter import SiteOutboundFilter

    p = resolve_params(params)
    recipe = FedEvalRecipe(
        name=TEMPLATE,
        model=SegUNet(channels=tuple(p["channels"])),
        eval_ckpt=str(p["checkpoint"]),
        min_clients=len(sites),
        eval_script=str(HERE / "client.py"),
        eval_args=_eval_args(p),
    )
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="evaluate-"))
    recipe.add_client_file(str(stage_client_files(HERE, TEMPLATE, work_dir)))
    recipe.add_client_output_filter(SiteOutboundFilter(), tasks=TASKS)
    recipe.add_server_input_filter(RoundMetricsRecorder(), tasks=TASKS)
    return recipe


def main() -> None:
    """Run the job in the NVFlare simulator with one client per ``--site name=home``."""
    from jobs.local_run import run_locally

    run_locally(TEMPLATE, __doc__.splitlines()[0], build_recipe)


if __name__ == "__main__":
    main()
