"""``python jobs/<template>/job.py --site name=home``: a template run locally in the simulator, no hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.local_run import parse_param, parse_sites

REPO = Path(__file__).resolve().parents[2]


def test_parameters_are_json_when_they_can_be_and_text_otherwise() -> None:
    assert parse_param("min_count=5") == ("min_count", 5)
    assert parse_param("model=seg3d:1") == ("model", "seg3d:1")
    assert parse_param("channels=[8, 16]") == ("channels", [8, 16])
    assert parse_param("note=a=b") == ("note", "a=b")
    with pytest.raises(ValueError, match="name=value"):
        parse_param("no-equals-sign")


def test_sites_need_a_name_and_a_home_once_each(tmp_path: Path) -> None:
    assert parse_sites([f"site-a={tmp_path}"]) == {"site-a": tmp_path}
    for bad in (["site-a"], ["=home"], ["site-a="]):
        with pytest.raises(ValueError, match="client-name=site-home"):
            parse_sites(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_sites([f"site-a={tmp_path}", f"site-a={tmp_path}"])


def test_a_bad_site_argument_is_a_usage_error_naming_it() -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(REPO / "jobs" / "fedstats" / "job.py"), "--site", "site-a"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2 and "--site expects client-name=site-home" in result.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_fedstats_runs_locally_on_two_site_homes(tmp_path: Path, nvflare_home: Path) -> None:
    from site_node.db import get_engine
    from site_node.home import init_home
    from site_node.outbound import list_ledger
    from site_node.training.approval import approve_template
    from site_node.training.toy_data import write_toy_curated

    homes = {}
    for name in ("site-a", "site-b"):
        home = homes[name] = tmp_path / name
        init_home(home, name, floor_k=5)
        write_toy_curated(home, patients=12, seed=len(name), shape=(16, 16, 16))
        approve_template(home, "fedstats", REPO / "jobs" / "fedstats")
    workspace = tmp_path / "ws"
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(REPO / "jobs" / "fedstats" / "job.py")]
        + [arg for name, home in homes.items() for arg in ("--site", f"{name}={home}")]
        + ["--param", "min_count=5", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(nvflare_home)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fedstats finished; results under" in result.stdout
    assert list(workspace.rglob("*.json"))  # the simulator's results
    for home in homes.values():  # each site's statistics left through its ledger
        assert list_ledger(get_engine(f"sqlite:///{home / 'site.db'}"))
