"""fedstats job: federated statistics over the sites' curated sets and OMOP persons (NVFlare FedStats).

Counts, means, standard deviations and histograms of lesion volumes, image intensities and ages.
Privacy: each site reports a dataset only when it has at least its own floor of records; on top,
the job's ``min_count`` (at least 5, the platform floor) removes small features, min/max get noise
and histogram bins are limited. Run locally::

    python jobs/fedstats/job.py --site site-a=/path/home-a --site site-b=/path/home-b
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common.job_params import FedstatsParams, validate_params

TEMPLATE = "fedstats"
HERE = Path(__file__).resolve().parent
DEFAULTS: dict[str, Any] = FedstatsParams().model_dump(mode="json")
#: Fixed histogram ranges where a natural one exists (others use the global min/max).
RANGES = {"age": [0, 110], "mean_hu": [-1024, 400], "lesion_mean_hu": [-200, 300]}


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``params``, checked against :class:`common.job_params.FedstatsParams`.

    Raises:
        InputError: an unknown name or a value of the wrong type or out of bounds (a ValueError too).
    """
    return validate_params(TEMPLATE, params or {})


def statistic_configs(p: dict[str, Any]) -> dict[str, Any]:
    """What to compute: counts, sums, means, standard deviations, histograms."""
    histogram: dict[str, Any] = {"*": {"bins": int(p["bins"])}}
    for feature, value_range in RANGES.items():
        histogram[feature] = {"bins": int(p["bins"]), "range": value_range}
    return {"count": {}, "sum": {}, "mean": {}, "stddev": {}, "histogram": histogram}


def build_recipe(sites: list[str], params: dict[str, Any] | None = None, work_dir: Path | None = None) -> Any:
    """Build the FedStats recipe for ``sites`` (client names)."""
    from nvflare.recipe.fedstats import FedStatsRecipe

    from jobs.metrics_recorder import RoundMetricsRecorder
    from site_node.training.approval import stage_client_files
    from site_node.training.privacy_filter import SiteOutboundFilter
    from site_node.training.statistics import SiteStatistics

    p = resolve_params(params)
    recipe = FedStatsRecipe(
        name=TEMPLATE,
        stats_output_path="statistics/fedstats.json",
        sites=sites,
        statistic_configs=statistic_configs(p),
        stats_generator=SiteStatistics(),
        min_count=int(p["min_count"]),
        min_noise_level=float(p["min_noise_level"]),
        max_noise_level=float(p["max_noise_level"]),
        max_bins_percent=float(p["max_bins_percent"]),
    )
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="fedstats-"))
    recipe.add_client_file(str(stage_client_files(HERE, TEMPLATE, work_dir)))
    tasks = ["fed_stats"]  # the task set must equal the one the stats cleansers use
    recipe.add_client_output_filter(SiteOutboundFilter(), tasks=tasks)
    recipe.add_server_input_filter(RoundMetricsRecorder(), tasks=tasks)
    return recipe


def main() -> None:
    """Run the job in the NVFlare simulator with one client per ``--site name=home``."""
    from jobs.local_run import run_locally

    run_locally(TEMPLATE, __doc__.splitlines()[0], build_recipe)


if __name__ == "__main__":
    main()
