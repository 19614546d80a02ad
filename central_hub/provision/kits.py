"""Run ``nvflare provision`` on a rendered project and say which startup kit goes where.

``nvflare provision -p project.yml -w OUT`` writes ``OUT/<project>/prod_NN/<participant>/`` (one
startup kit per participant) and keeps the root CA in ``OUT/<project>/state/`` so that a later run in
the same workspace (adding a site) signs with the same CA. It runs as a subprocess with the same
Python, so this module does not import nvflare.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from central_hub.provision.project import ProvisionSpec, write_project_yml
from common.errors import ConfigError, RemoteError

logger = logging.getLogger(__name__)

_PROD = re.compile(r"^prod_(\d+)$")
PROVISION_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ProvisionResult:
    """Where each startup kit of one provisioning run lies.

    Attributes:
        project_yml: the rendered project file.
        workspace: the provisioning workspace (holds the root CA: keep it offline).
        kit_dir: ``<workspace>/<project>/prod_NN`` of this run.
        server_kit: the hub's kit (NVFlare server).
        site_kits: site id -> that site's kit (NVFlare client).
        researcher_kits: researcher admin name -> admin kit (role lead).
        operator_kit: the hub operator's admin kit (role project_admin).
    """

    project_yml: Path
    workspace: Path
    kit_dir: Path
    server_kit: Path
    site_kits: dict[str, Path]
    researcher_kits: dict[str, Path]
    operator_kit: Path

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: which kit goes to which machine."""
        return {
            "project_yml": str(self.project_yml),
            "workspace": str(self.workspace),
            "kit_dir": str(self.kit_dir),
            "server_kit": {"path": str(self.server_kit), "goes_to": "hub machine (NVFlare server)"},
            "site_kits": {
                s: {"path": str(p), "goes_to": f"site {s} (NVFlare client)"}
                for s, p in self.site_kits.items()
            },
            "researcher_kits": {
                r: {"path": str(p), "goes_to": "researcher workstation (admin, role lead)"}
                for r, p in self.researcher_kits.items()
            },
            "operator_kit": {
                "path": str(self.operator_kit),
                "goes_to": "hub machine, hub operator / hub job runner (project_admin)",
            },
        }


def nvflare_command() -> list[str]:
    """The ``nvflare`` CLI of the running interpreter (so the hub and the kits share one version)."""
    return [sys.executable, "-m", "nvflare.cli"]


def latest_prod_dir(project_root: Path) -> Path:
    """The newest ``prod_NN`` folder under ``<workspace>/<project>``.

    Raises:
        ConfigError: there is none.
    """
    runs = [(int(m.group(1)), p) for p in project_root.glob("prod_*") if (m := _PROD.match(p.name))]
    if not runs:
        raise ConfigError("provisioning produced no prod_NN folder", field="workspace")
    return max(runs)[1]


def run_nvflare_provision(
    project_yml: Path,
    workspace: Path,
    env: dict[str, str] | None = None,
    timeout: float = PROVISION_TIMEOUT_S,
) -> None:
    """Run ``nvflare provision -p project_yml -w workspace`` non-interactively.

    Args:
        project_yml: the rendered project file.
        workspace: provisioning workspace (created; reused runs keep the same root CA).
        env: extra environment variables for the subprocess.
        timeout: seconds before the run is abandoned.

    Raises:
        RemoteError: nvflare is missing, timed out or reported an error.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    cmd = [
        *nvflare_command(),
        "--format",
        "json",
        "provision",
        "-p",
        str(project_yml.resolve()),
        "-w",
        str(workspace.resolve()),
        "--force",
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        raise RemoteError("nvflare provision timed out", field="nvflare") from None
    envelope = _last_json(proc.stdout)
    if proc.returncode != 0 or envelope.get("status") != "ok":
        detail = envelope.get("message") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named nvflare" in proc.stderr:
            detail = "nvflare is not installed (pip install 'fedimaging[train]')"
        raise RemoteError(f"nvflare provision failed: {detail}", field="nvflare")
    logger.info("nvflare provision wrote %d packages", len(envelope.get("data", {}).get("packages", [])))


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def locate_kits(spec: ProvisionSpec, project_yml: Path, workspace: Path) -> ProvisionResult:
    """Map the participants of ``spec`` to their kits in the newest ``prod_NN`` folder.

    Raises:
        ConfigError: a participant's kit is missing.
    """
    kit_dir = latest_prod_dir(workspace / spec.project_name)

    def kit(name: str) -> Path:
        path = kit_dir / name
        if not (path / "startup").is_dir():
            raise ConfigError("a participant's startup kit is missing after provisioning", field="workspace")
        return path

    return ProvisionResult(
        project_yml=project_yml,
        workspace=workspace,
        kit_dir=kit_dir,
        server_kit=kit(spec.server_host),
        site_kits={s: kit(s) for s in spec.sites},
        researcher_kits={r: kit(r) for r in spec.researcher_emails},
        operator_kit=kit(spec.operator_email),
    )


def provision(
    spec: ProvisionSpec, out: Path, env: dict[str, str] | None = None, timeout: float = PROVISION_TIMEOUT_S
) -> ProvisionResult:
    """Render ``<out>/project.yml`` for ``spec``, run ``nvflare provision`` into ``out``, map the kits.

    Args:
        spec: what to provision.
        out: provisioning workspace; holds the root CA afterwards (keep it offline, backed up).
        env: extra environment variables for the nvflare subprocess.
        timeout: seconds before nvflare is abandoned.

    Returns:
        Where every kit lies.

    Raises:
        InputError: the spec is invalid (nothing is written).
        RemoteError: nvflare failed.
    """
    out = out.expanduser().resolve()
    project_yml = write_project_yml(spec, out / "project.yml")
    run_nvflare_provision(project_yml, out, env=env, timeout=timeout)
    return locate_kits(spec, project_yml, out)
