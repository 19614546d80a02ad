"""The deploy scripts and systemd units, without starting any service."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from central_hub.provision.cli import provision_command
from infra.deploy.wait_ports import main as wait_main
from infra.deploy.wait_ports import server_endpoints
from tests.infra.deploy_harness import DEPLOY, REPO, free_ports, script_env

SCRIPTS = sorted(DEPLOY.glob("*.sh"))
UNITS = sorted((DEPLOY / "systemd").iterdir())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("nvflare")
    fl, admin = free_ports(2)
    return provision_command("site-a", "alice", tmp_path_factory.mktemp("prov"), fl_port=fl, admin_port=admin)


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_client_without_site_policy_does_not_start(kits: dict, tmp_path: Path) -> None:
    kit = tmp_path / "nvflare"
    shutil.copytree(kits["site_kits"]["site-a"]["path"], kit)
    result = _run("run-flare.sh", str(kit), env=script_env(tmp_path, SITE_NODE_HOME=str(tmp_path)))
    assert result.returncode == 78
    assert "authorization.json" in result.stderr
    assert not (kit / "log.txt").exists()  # NVFlare never ran


def test_client_needs_its_site_home(kits: dict, tmp_path: Path) -> None:
    kit = tmp_path / "nvflare"
    shutil.copytree(kits["site_kits"]["site-a"]["path"], kit)
    for name in ("authorization.json", "privacy.json"):
        (kit / "local" / name).write_text("{}")
    result = _run("run-flare.sh", str(kit), env=script_env(tmp_path))
    assert result.returncode == 78 and "SITE_NODE_HOME" in result.stderr


def test_not_a_kit_is_refused(tmp_path: Path) -> None:
    result = _run("run-flare.sh", str(tmp_path), env=script_env(tmp_path))
    assert result.returncode == 66


def test_start_site_refuses_a_folder_that_is_not_a_site_home(tmp_path: Path) -> None:
    result = _run("start-site.sh", str(tmp_path), env=script_env(tmp_path))
    assert result.returncode == 78 and "site-node init" in result.stderr
    assert not (tmp_path / "run").exists()


def test_stop_scripts_are_idempotent(tmp_path: Path) -> None:
    for script in ("stop-hub.sh", "stop-site.sh"):
        result = _run(script, str(tmp_path), env=script_env(tmp_path))
        assert result.returncode == 0 and "not running" in result.stdout


def test_server_endpoints_from_kit(kits: dict) -> None:
    server = Path(kits["server_kit"]["path"])
    config = json.loads((server / "startup" / "fed_server.json").read_text())["servers"][0]
    (host, fl_port), (_, admin_port) = server_endpoints(server)
    assert host == "localhost"
    assert f"{host}:{fl_port}" == config["service"]["target"] and admin_port == config["admin_port"]


def test_wait_ports_times_out_on_a_closed_port(kits: dict) -> None:
    assert wait_main(["--kit", kits["server_kit"]["path"], "--timeout", "0.5"]) == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """Units are valid once /opt/fedimaging points at an installation (here: this checkout)."""
    for unit in UNITS:
        text = unit.read_text().replace("/opt/fedimaging", str(REPO))
        name = unit.name.replace("@.", "@site-a.")
        (tmp_path / name).write_text(text)
    targets = [str(p) for p in sorted(tmp_path.iterdir())]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *targets],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "fedimaging" in line and "Unit configured to use" not in line
    ]
    assert not problems, problems


def test_example_site_policy_keeps_outsiders_off_the_site() -> None:
    policy = json.loads((DEPLOY / "site-policy" / "authorization.json").read_text())["permissions"]
    for role in ("project_admin", "lead"):
        assert policy[role]["shell_commands"] == "none" and policy[role]["operate"] == "none"
        assert policy[role]["submit_job"] == "any"


def test_example_privacy_policy_names_the_site_outbound_filter() -> None:
    pytest.importorskip("nvflare")
    import importlib

    from nvflare.apis.filter import Filter

    privacy = json.loads((DEPLOY / "site-policy" / "privacy.json").read_text())
    (scope,) = privacy["scopes"]
    assert privacy["default_scope"] == scope["name"]
    (entry,) = scope["task_result_filters"]
    module, _, name = entry["path"].rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), name), Filter)
