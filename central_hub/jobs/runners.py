"""Job runners behind one interface: the NVFlare simulator (local demo) and a provisioned server.

``start`` hands a job to NVFlare; ``poll`` says where it stands. Both leave the job's server-side
files (metrics records, cross-site results, global model) under ``<hub home>/jobs/<id>/workspace``,
which :mod:`central_hub.jobs.results` reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from common.config import HubSettings
from common.errors import ConfigError, InputError, RemoteError

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE_MAP_ENV = "FEDIMAGING_SITE_MAP"  # read by site_node.training.site (the hub never imports site_node)


@dataclass
class RunnerStatus:
    """Where a job stands: ``running``, ``finished`` or ``failed`` (with a message)."""

    state: str
    message: str | None = None


class JobRunner(Protocol):
    """What the hub needs from a way of running NVFlare jobs."""

    name: str

    def start(self, job_id: str, template: str, params: dict[str, Any], sites: list[str]) -> str | None:
        """Start the job; return NVFlare's job id when there is one."""

    def poll(self, job_id: str, nvflare_job_id: str | None) -> RunnerStatus:
        """The job's state; when finished, its files are under :func:`job_dir`/workspace."""


def job_dir(settings: HubSettings, job_id: str) -> Path:
    """The folder of one job under the hub home."""
    return settings.home / "jobs" / job_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child we started is a zombie until reaped
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


class SimulatorRunner:
    """Runs each job in NVFlare's simulator in a subprocess (the hub stays responsive)."""

    name = "simulator"

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings

    def _site_map(self, sites: list[str]) -> dict[str, str]:
        unknown = [s for s in sites if s not in self.settings.simulator_sites]
        if unknown:
            raise InputError(
                f"site {unknown[0]} has no home configured for the simulator", field="simulator_sites"
            )
        return {s: str(Path(self.settings.simulator_sites[s]).resolve()) for s in sites}

    def start(self, job_id: str, template: str, params: dict[str, Any], sites: list[str]) -> str | None:
        """Write the spec and the client -> home map, then launch the simulator subprocess."""
        folder = job_dir(self.settings, job_id)
        (folder / "home").mkdir(parents=True, exist_ok=True)
        site_map = folder / "site_map.json"
        site_map.write_text(json.dumps(self._site_map(sites), indent=2))
        spec = folder / "spec.json"
        spec.write_text(json.dumps({"template": template, "params": params, "sites": sites}, indent=2))
        env = dict(os.environ)
        env.update(
            {
                "HOME": str(folder / "home"),  # NVFlare writes under $HOME: keep it inside the job folder
                SITE_MAP_ENV: str(site_map),
                # NVFlare copies referenced modules into custom/ without __init__.py: real packages first
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            }
        )
        with open(folder / "simulator.log", "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "central_hub.jobs.simulate", str(spec)],
                cwd=folder,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (folder / "pid").write_text(str(proc.pid))
        return None

    def poll(self, job_id: str, nvflare_job_id: str | None) -> RunnerStatus:
        """Finished or failed once ``result.json`` exists; failed if the process died without one."""
        folder = job_dir(self.settings, job_id)
        result = folder / "result.json"
        if result.exists():
            data = json.loads(result.read_text())
            return RunnerStatus(data["state"], data.get("error"))
        pid_file = folder / "pid"
        if pid_file.exists() and not _pid_alive(int(pid_file.read_text())):
            if result.exists():
                return self.poll(job_id, nvflare_job_id)
            return RunnerStatus("failed", "the simulator process ended without a result")
        return RunnerStatus("running")

    def stop(self, job_id: str) -> None:
        """Terminate a running simulator (its whole process group)."""
        pid_file = job_dir(self.settings, job_id) / "pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass


class SessionRunner:
    """Submits jobs to a provisioned NVFlare server through the Session API (production)."""

    name = "production"
    _DONE_OK = "FINISHED:COMPLETED"

    def __init__(self, settings: HubSettings) -> None:
        if not settings.nvflare_admin_kit or not settings.nvflare_admin_user:
            raise ConfigError(
                "production jobs need nvflare_admin_kit and nvflare_admin_user", field="nvflare_admin_kit"
            )
        self.settings = settings

    def _session(self) -> Any:
        from nvflare.fuel.flare_api.flare_api import new_secure_session

        try:
            return new_secure_session(self.settings.nvflare_admin_user, str(self.settings.nvflare_admin_kit))
        except Exception as exc:  # the Session API raises many types; all mean "server not usable"
            raise RemoteError(f"cannot open an NVFlare admin session ({type(exc).__name__})") from None

    def start(self, job_id: str, template: str, params: dict[str, Any], sites: list[str]) -> str | None:
        """Export the same job folder the simulator runs and submit it."""
        from central_hub.jobs.templates import load_template

        folder = job_dir(self.settings, job_id)
        recipe = load_template(template).build_recipe(sites, params, folder / "manifest")
        recipe.export(str(folder / "export"))
        exported = next(p for p in (folder / "export").iterdir() if p.is_dir())
        session = self._session()
        try:
            return str(session.submit_job(str(exported)))
        finally:
            session.close()

    def poll(self, job_id: str, nvflare_job_id: str | None) -> RunnerStatus:
        """Ask the server; when the job is done download its result into the job folder."""
        if not nvflare_job_id:
            return RunnerStatus("failed", "no NVFlare job id was recorded")
        session = self._session()
        try:
            status = str(session.get_job_meta(nvflare_job_id).get("status", ""))
            if not status.startswith("FINISHED"):
                return RunnerStatus("running")
            session.download_job_result(nvflare_job_id, str(job_dir(self.settings, job_id) / "workspace"))
        finally:
            session.close()
        if status == self._DONE_OK:
            return RunnerStatus("finished")
        return RunnerStatus("failed", f"NVFlare job ended with {status}")


def get_runner(settings: HubSettings) -> JobRunner:
    """The runner for the hub's ``nvflare_mode``."""
    if settings.nvflare_mode == "production":
        return SessionRunner(settings)
    return SimulatorRunner(settings)
