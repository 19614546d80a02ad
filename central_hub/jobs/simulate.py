"""Subprocess entry of the simulator runner: ``python -m central_hub.jobs.simulate SPEC.json``.

Runs one job in NVFlare's simulator (one client per site home) and writes ``result.json`` beside
the spec: ``{"state": "finished"}`` or ``{"state": "failed", "error": ...}``.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

log = logging.getLogger(__name__)


def run_spec(spec_path: Path) -> dict[str, str]:
    """Build the job's recipe and run it in the simulator; return the result record."""
    from nvflare.recipe.sim_env import SimEnv

    from central_hub.jobs.templates import load_template

    spec = json.loads(spec_path.read_text())
    job_dir = spec_path.parent
    sites = list(spec["sites"])
    module = load_template(spec["template"])
    recipe = module.build_recipe(sites, spec["params"], job_dir / "manifest")
    env = SimEnv(clients=sites, num_threads=len(sites), workspace_root=str(job_dir / "workspace"))
    recipe.run(env)
    return {"state": "finished"}


def main(argv: list[str] | None = None) -> int:
    """Run the spec named on the command line; always leave a result.json."""
    args = argv if argv is not None else sys.argv[1:]
    spec_path = Path(args[0]).resolve()
    logging.basicConfig(level=logging.INFO)
    try:
        result = run_spec(spec_path)
    except Exception as exc:  # any failure must reach the hub as a state, not a lost process
        traceback.print_exc()
        result = {"state": "failed", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    (spec_path.parent / "result.json").write_text(json.dumps(result))
    return 0 if result["state"] == "finished" else 1


if __name__ == "__main__":
    raise SystemExit(main())
