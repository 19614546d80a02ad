"""fedquery job: a federated cohort query (counts and a Kaplan-Meier curve) on the sites' OMOP tables.

The cohort definition travels as the task's metadata; each site validates it, evaluates it on its
own OMOP CDM tables and releases only floored counts and a coarsened life table
(:mod:`site_node.query.result`). The server records each site's answer in ``fedquery_results.json``;
the hub pools them. Run locally::

    python jobs/fedquery/job.py --site site-a=/path/home-a --param 'cohort={"modality": "CT"}'
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

TEMPLATE = "fedquery"
HERE = Path(__file__).resolve().parent
TASK = "fedquery"


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The validated parameters with defaults (:class:`common.schemas.cohort_query.FedQueryParams`).

    Raises:
        InputError: an unknown name or a value out of range (the message names the field only).
    """
    from common.job_params import validate_params

    return validate_params(TEMPLATE, params or {})


def build_recipe(sites: list[str], params: dict[str, Any] | None = None, work_dir: Path | None = None) -> Any:
    """Build the one-task recipe for ``sites`` (client names)."""
    from nvflare.recipe.fed_task import FedTaskRecipe

    from jobs.metrics_recorder import RoundMetricsRecorder
    from jobs.query_recorder import QueryResultRecorder
    from site_node.training.approval import stage_client_files
    from site_node.training.privacy_filter import SiteOutboundFilter

    p = resolve_params(params)
    recipe = FedTaskRecipe(
        name=TEMPLATE,
        task_name=TASK,
        min_clients=len(sites),
        task_meta={"fedquery": p},
        task_script=str(HERE / "client.py"),
    )
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="fedquery-"))
    recipe.add_client_file(str(stage_client_files(HERE, TEMPLATE, work_dir)))
    recipe.add_client_output_filter(SiteOutboundFilter(), tasks=[TASK])
    recipe.add_server_input_filter(RoundMetricsRecorder(), tasks=[TASK])
    recipe.add_server_input_filter(QueryResultRecorder(), tasks=[TASK])
    return recipe


def main() -> None:
    """Run in the NVFlare simulator with one client per ``--site name=home``."""
    from nvflare.recipe.sim_env import SimEnv

    from site_node.training.site import SITE_MAP_ENV, write_site_map

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", required=True, help="client-name=site-home")
    parser.add_argument("--param", action="append", default=[], help="name=value (JSON value)")
    parser.add_argument("--workspace", type=Path, default=Path(tempfile.mkdtemp(prefix="fedquery-ws-")))
    args = parser.parse_args()
    homes = dict(item.split("=", 1) for item in args.site)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE.parents[1]), os.environ.get("PYTHONPATH")])
    )
    args.workspace.mkdir(parents=True, exist_ok=True)
    os.environ[SITE_MAP_ENV] = str(write_site_map(args.workspace / "site_map.json", homes))
    params = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    recipe = build_recipe(list(homes), params, args.workspace)
    run = recipe.run(SimEnv(clients=list(homes), num_threads=len(homes), workspace_root=str(args.workspace)))
    print(f"results written under {run.get_result()}")


if __name__ == "__main__":
    main()
