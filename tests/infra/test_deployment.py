"""A real deployment on loopback: provision, start hub and two sites from their kits, run a job, stop.

Separate processes, mutual TLS, the hub on PostgreSQL, the infra/deploy scripts as an operator runs
them. A client provisioned by another, independent provisioning is refused. Every process is killed
in a ``finally`` (by pid, descendants included) and every wait is bounded.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from central_hub.provision.cli import provision_command
from tests.infra.deploy_harness import (
    DEPLOY,
    REPO,
    SITE_POLICY,
    ProcessTracker,
    free_ports,
    run_script,
    script_env,
    tls_handshake,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.postgres]
pytest.importorskip("nvflare")

SITES = ("site-a", "site-b")
ROGUE = "site-c"
RESEARCHER = "alice@fedimaging.org"
OPERATOR = "hub-admin@fedimaging.org"
CLIENT_SCRIPT = Path(__file__).with_name("flare_np_client.py")
SEG3D_PARAMS = {
    "rounds": 2,
    "local_epochs": 1,
    "patch": [16, 16, 16],
    "channels": [4, 8],
    "cross_site_eval": False,
}
BIN = Path(sys.executable).parent


@dataclass
class Deployment:
    """Everything the test set up."""

    root: Path
    env: dict[str, str]
    kits: dict
    hub_home: Path
    site_homes: dict[str, Path]
    hub_port: int
    site_ports: dict[str, int]
    fl_port: int
    admin_port: int
    tracker: ProcessTracker = field(default_factory=ProcessTracker)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def run_dirs(self) -> list[Path]:
        return [self.hub_home / "run", *(h / "run" for h in self.site_homes.values())]


def _cli(program: str, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run([str(BIN / program), *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _install_site(root: Path, site: str, kit: Path, env: dict[str, str], seed: int = 0) -> Path:
    """What a site admin does: init the home, unpack the kit, install the site's policy, approve seg3d.

    The toy curated set stands in for the site's curated data (the pipeline stages are tested elsewhere).
    """
    from site_node.training.approval import approve_template
    from site_node.training.toy_data import write_toy_curated

    home = root / "sites" / site
    _cli("site-node", "init", "--home", str(home), "--site-id", site, env=env)
    shutil.copytree(kit, home / "nvflare")
    for policy in ("authorization.json", "privacy.json"):
        shutil.copy(SITE_POLICY / policy, home / "nvflare" / "local" / policy)
    write_toy_curated(home, patients=4, seed=seed, style="ab"[seed % 2], shape=(24, 24, 16))
    approve_template(home, "seg3d", REPO / "jobs" / "seg3d")
    return home


@pytest.fixture
def deployment(
    tmp_path: Path, fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    """Provisioned kits, an initialised hub (PostgreSQL) and two site homes; stopped afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # NVFlare's admin API writes under $HOME/.nvflare
    fl_port, admin_port, hub_port, *site_ports = free_ports(3 + len(SITES))
    env = script_env(home, HUB_DB_URL=fresh_postgres_url)
    start = time.perf_counter()
    kits = provision_command(
        ",".join(SITES), "alice", tmp_path / "provision", fl_port=fl_port, admin_port=admin_port
    )
    hub_home = tmp_path / "hub"
    _cli("central-hub", "init", "--home", str(hub_home), "--db", fresh_postgres_url, env=env)
    shutil.copytree(kits["server_kit"]["path"], hub_home / "nvflare")
    homes = {
        s: _install_site(tmp_path, s, Path(kits["site_kits"][s]["path"]), env, seed=i)
        for i, s in enumerate(SITES)
    }
    dep = Deployment(
        tmp_path,
        env,
        kits,
        hub_home,
        homes,
        hub_port,
        dict(zip(SITES, site_ports, strict=True)),
        fl_port,
        admin_port,
    )
    dep.timings["provision + install"] = time.perf_counter() - start
    try:
        yield dep
    finally:
        dep.tracker.add_pid_files(*dep.run_dirs)
        for site, site_home in homes.items():
            _quiet_stop("stop-site.sh", site_home, dep)
        _quiet_stop("stop-hub.sh", hub_home, dep)
        dep.tracker.kill_all()
        print(f"\ndeployment timings (s): { {k: round(v, 1) for k, v in dep.timings.items()} }")


def _quiet_stop(script: str, home: Path, dep: Deployment) -> None:
    try:
        subprocess.run(
            ["bash", str(DEPLOY / script), str(home)],
            env=dep.env,
            timeout=60,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pass  # kill_all() below takes care of it


def _session(kit: Path, user: str):  # type: ignore[no-untyped-def]
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    return new_secure_session(user, str(kit), timeout=30)


def _connected_clients(dep: Deployment) -> set[str]:
    sess = _session(Path(dep.kits["operator_kit"]["path"]), OPERATOR)
    try:
        return {c.name for c in sess.get_system_info().client_info}
    finally:
        sess.close()


def _start(dep: Deployment) -> None:
    start = time.perf_counter()
    run_script(
        "start-hub.sh",
        str(dep.hub_home),
        env={
            **dep.env,
            "HUB_API_PORT": str(dep.hub_port),
            "HUB_NVFLARE_MODE": "production",
            "HUB_NVFLARE_ADMIN_KIT": dep.kits["operator_kit"]["path"],
            "HUB_NVFLARE_ADMIN_USER": OPERATOR,
        },
    )
    for site, home in dep.site_homes.items():
        run_script("start-site.sh", str(home), env={**dep.env, "SITE_API_PORT": str(dep.site_ports[site])})
    dep.tracker.add_pid_files(*dep.run_dirs)
    wait_until(lambda: _connected_clients(dep) >= set(SITES), 90, "both sites to register")
    dep.timings["start hub + 2 sites until registered"] = time.perf_counter() - start


def _site_policy_applies(dep: Deployment) -> None:
    """The site's own authorization.json is in force: even the hub operator may not run shell commands."""
    sess = _session(Path(dep.kits["operator_kit"]["path"]), OPERATOR)
    try:
        try:
            answer = sess.ls_target("site-a")
        except Exception as exc:  # the API may raise or answer with the refusal text
            answer = str(exc)
    finally:
        sess.close()
    assert "not authorized" in answer.lower() or "not_authorized" in answer.lower(), answer


def _check_services(dep: Deployment, postgres_url: str) -> None:
    """The hub API answers and uses PostgreSQL; each site admin API answers with its token."""
    with urllib.request.urlopen(f"http://127.0.0.1:{dep.hub_port}/healthz", timeout=10) as reply:
        assert reply.status == 200
    assert not (dep.hub_home / "hub.db").exists()
    from sqlalchemy import create_engine, inspect

    engine = create_engine(postgres_url)
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    for site, home in dep.site_homes.items():
        token = (home / "phi" / "admin.token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{dep.site_ports[site]}/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200


def _ledger(home: Path) -> list[dict]:
    from sqlalchemy import create_engine

    from site_node.outbound import list_ledger

    engine = create_engine(f"sqlite:///{home / 'site.db'}")
    try:
        return list_ledger(engine)
    finally:
        engine.dispose()


def _unapproved_job_is_refused(dep: Deployment) -> None:
    """A researcher who bypasses the hub with their own admin kit still meets each site's own policy.

    The job (a tiny NumPy FedAvg) is not a template the sites approved, so the filter in each site's
    privacy.json refuses every result: the ledgers show refusals and no model update for it.
    """
    from nvflare.app_common.np.recipes.fedavg import NumpyFedAvgRecipe

    start = time.perf_counter()
    recipe = NumpyFedAvgRecipe(
        name="unapproved",
        model=np.zeros((2, 3)).tolist(),
        min_clients=len(SITES),
        num_rounds=1,
        train_script=str(CLIENT_SCRIPT),
    )
    recipe.export(str(dep.root / "job"))
    sess = _session(Path(dep.kits["researcher_kits"][RESEARCHER]["path"]), RESEARCHER)
    try:
        job_id = sess.submit_job(str(dep.root / "job" / "unapproved"))
        dep.tracker.snapshot()
        meta = sess.wait_for_job(job_id, timeout=150, poll_interval=2.0)
    finally:
        sess.close()
    assert str(meta["status"]).startswith("FINISHED"), meta
    for site, home in dep.site_homes.items():
        kinds = [row["kind"] for row in _ledger(home) if row["job_id"] == job_id]
        assert kinds and set(kinds) == {"refusal"}, (site, kinds)
    dep.timings["unapproved job refused by the sites"] = time.perf_counter() - start


def _hub(dep: Deployment, method: str, path: str, token: str, body: dict | None = None) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{dep.hub_port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        return reply.read()


def _project_approved_by_the_sites(dep: Deployment, token: str, member: str) -> None:
    """Project 'deploy' with ``member``; an access request for seg3d that each site admin approves
    at the site with ``site-node requests approve`` (over the site's outbound link to the hub)."""
    hub_home = ["--home", str(dep.hub_home)]
    site_tokens = {
        site: json.loads(
            _cli("central-hub", "site", "add", site, "--country", "DE", *hub_home, "--json", env=dep.env)
        )["token"]
        for site in SITES
    }
    _cli("central-hub", "project", "create", "deploy", "--sites", ",".join(SITES), *hub_home, env=dep.env)
    _cli("central-hub", "project", "add-member", "deploy", "--token-name", member, *hub_home, env=dep.env)
    request = {
        "project": "deploy",
        "sites": list(SITES),
        "templates": ["seg3d"],
        "justification": "deployment test",
    }
    filed = json.loads(_hub(dep, "POST", "/access-requests", token, request))
    hub = f"http://127.0.0.1:{dep.hub_port}"
    until = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    for site, home in dep.site_homes.items():
        link = ["--hub", hub, "--token", site_tokens[site], "--home", str(home)]
        _cli("site-node", "requests", "approve", str(filed["id"]), "--until", until, *link, env=dep.env)


def _run_seg3d_through_hub(dep: Deployment) -> bytes:
    """The researcher submits seg3d through the hub's job API; the hub's production runner uses the
    Session API with the operator kit; each site checks its approval and filters what leaves."""
    start = time.perf_counter()
    token = json.loads(
        _cli(
            "central-hub",
            "token",
            "create",
            "--role",
            "researcher",
            "--name",
            "alice",
            "--home",
            str(dep.hub_home),
            "--json",
            env=dep.env,
        )
    )["token"]
    _project_approved_by_the_sites(dep, token, "alice")
    body = {"template": "seg3d", "sites": list(SITES), "params": SEG3D_PARAMS, "project": "deploy"}
    job = json.loads(_hub(dep, "POST", "/jobs", token, body))
    dep.tracker.snapshot()
    final = wait_until(
        lambda: _terminal(json.loads(_hub(dep, "GET", f"/jobs/{job['id']}", token))),
        240,
        "the seg3d job to finish",
        interval=3.0,
    )
    dep.timings["seg3d via hub: submit -> finished"] = time.perf_counter() - start
    assert final["state"] == "finished" and not final.get("refusals"), final
    for site, home in dep.site_homes.items():  # what left each site is in its own ledger
        kinds = [row["kind"] for row in _ledger(home)]
        assert kinds.count("model_update+metrics") >= SEG3D_PARAMS["rounds"], (site, kinds)
    return _hub(dep, "GET", f"/jobs/{job['id']}/model", token)


def _global_model_loads(payload: bytes) -> None:
    import io

    import torch

    from site_node.training.model import SegUNet

    checkpoint = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    SegUNet(channels=tuple(SEG3D_PARAMS["channels"])).load_state_dict(checkpoint["model"])


def _terminal(job: dict) -> dict | None:
    return job if job.get("state") not in ("submitted", "running") else None


def _rogue_is_refused(dep: Deployment) -> None:
    """A client with a certificate from an independent provisioning cannot join."""
    start = time.perf_counter()
    rogue = provision_command(
        ROGUE, "mallory", dep.root / "rogue-provision", fl_port=dep.fl_port, admin_port=dep.admin_port
    )
    rogue_home = _install_site(dep.root, ROGUE, Path(rogue["site_kits"][ROGUE]["path"]), dep.env)
    log = (dep.root / "rogue.log").open("wb")
    proc = subprocess.Popen(
        ["bash", str(DEPLOY / "run-flare.sh"), str(rogue_home / "nvflare")],
        env={**dep.env, "SITE_NODE_HOME": str(rogue_home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    dep.tracker.add(proc.pid)  # the fixture's clean-up covers it too
    rogue_procs = ProcessTracker()
    rogue_procs.add(proc.pid)
    try:
        flare_log = rogue_home / "nvflare" / "log.txt"
        wait_until(
            lambda: flare_log.exists() and "CERTIFICATE_VERIFY_FAILED" in flare_log.read_text(),
            60,
            "the rogue client's TLS failure",
        )
        assert ROGUE not in _connected_clients(dep)
        real_ca = Path(dep.kits["server_kit"]["path"]) / "startup" / "rootCA.pem"
        rogue_startup = rogue_home / "nvflare" / "startup"
        # even a rogue that trusts the real CA is refused by the server: its certificate is foreign
        assert (
            tls_handshake(dep.fl_port, rogue_startup / "client.crt", rogue_startup / "client.key", real_ca)
            == "refused"
        )
        site_a = dep.site_homes["site-a"] / "nvflare" / "startup"
        assert tls_handshake(dep.fl_port, site_a / "client.crt", site_a / "client.key", real_ca) == "accepted"
    finally:
        rogue_procs.kill_all(grace=3)
        log.close()
    dep.timings["rogue client refused"] = time.perf_counter() - start


def _stop(dep: Deployment) -> None:
    start = time.perf_counter()
    dep.tracker.add_pid_files(*dep.run_dirs)
    dep.tracker.snapshot()
    for home in dep.site_homes.values():
        assert "site-flare stopped" in run_script("stop-site.sh", str(home), env=dep.env)
    assert "hub-flare stopped" in run_script("stop-hub.sh", str(dep.hub_home), env=dep.env)
    assert not list(dep.root.rglob("run/*.pid"))
    assert dep.tracker.alive_pids() == [], "processes survived the stop scripts"
    dep.timings["stop everything"] = time.perf_counter() - start


def test_real_deployment_on_loopback(deployment: Deployment, fresh_postgres_url: str) -> None:
    _start(deployment)
    _check_services(deployment, fresh_postgres_url)
    _site_policy_applies(deployment)
    _rogue_is_refused(deployment)
    _global_model_loads(_run_seg3d_through_hub(deployment))
    _unapproved_job_is_refused(deployment)
    _stop(deployment)
