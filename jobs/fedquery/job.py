"""fedquery job: a federated cohort query (counts and a Kaplan-Meier curve) on the sites' OMOP tables.

The cohort definition travels as the task's metadata; each site validates it, evaluates it on its
own OMOP CDM tables and releases only floored counts and a coarsened life table
(:mod:`site_node.query.result`). The server records each site's answer in ``fedquery_results.json``;
the hub pools them. Run locally::

    python jobs/fedquery/job.py --site site-a=/path/home-a --param 'cohort={"modality": "CT"}'
"""

from __future__ import annotations

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
    """Run the job in the NVFlare simulator with one client per ``--site name=home``."""
    from jobs.local_run import run_locally

    run_locally(TEMPLATE, __doc__.splitlines()[0], build_recipe)


if __name__ == "__main__":
    main()
