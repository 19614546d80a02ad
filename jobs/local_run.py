"""``python jobs/<template>/job.py --site name=home ...``: run one job template in NVFlare's simulator.

The developer's and site admin's way to try a template on local site homes, without a hub: one
simulated client per ``--site``, the template's own ``build_recipe``, parameters given as
``--param name=value`` (a JSON value, else the text). The hub runs submitted jobs through
``central_hub.jobs.simulate`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: ``build_recipe(sites, params, workspace)`` of a template's job.py.
RecipeBuilder = Callable[[list[str], dict[str, Any], Path], Any]


def parse_param(text: str) -> tuple[str, Any]:
    """``name=value`` -> (name, value): the value read as JSON when it is JSON, else kept as text.

    Raises:
        ValueError: no ``=`` or no name.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--param expects name=value, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def parse_sites(items: Sequence[str]) -> dict[str, Path]:
    """``name=home`` items -> {client name: site home}.

    Raises:
        ValueError: an item without ``=``, or a name given twice.
    """
    homes: dict[str, Path] = {}
    for item in items:
        name, sep, home = item.partition("=")
        if not sep or not name or not home:
            raise ValueError(f"--site expects client-name=site-home, got {item!r}")
        if name in homes:
            raise ValueError(f"--site names {name!r} twice")
        homes[name] = Path(home)
    return homes


def run_locally(
    template: str, description: str, build_recipe: RecipeBuilder, argv: Sequence[str] | None = None
) -> Any:
    """Parse the command line, run the template in the simulator and print where its results are.

    Returns:
        The simulator run (``get_result()`` is the results folder).
    """
    from nvflare.recipe.sim_env import SimEnv

    from site_node.training.site import SITE_MAP_ENV, write_site_map

    parser = argparse.ArgumentParser(prog=f"jobs/{template}/job.py", description=description)
    parser.add_argument(
        "--site", action="append", required=True, help="client-name=site-home (repeat per site)"
    )
    parser.add_argument("--param", action="append", default=[], help="name=value (a JSON value, else text)")
    parser.add_argument(
        "--workspace", type=Path, help="simulator workspace (default: a new temporary folder)"
    )
    args = parser.parse_args(argv)
    try:
        homes = parse_sites(args.site)
        params = dict(parse_param(p) for p in args.param)
    except ValueError as exc:
        parser.error(str(exc))
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix=f"{template}-ws-"))
    workspace.mkdir(parents=True, exist_ok=True)
    # NVFlare copies the modules a job references into its custom/ folder without their __init__.py;
    # with an editable install those copies would shadow the real packages unless the root is on the path.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    os.environ[SITE_MAP_ENV] = str(write_site_map(workspace / "site_map.json", homes))
    recipe = build_recipe(list(homes), params, workspace)
    run = recipe.run(SimEnv(clients=list(homes), num_threads=len(homes), workspace_root=str(workspace)))
    print(f"{template} finished; results under {run.get_result()}")
    return run
