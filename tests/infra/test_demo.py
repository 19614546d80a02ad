"""`make demo` end to end (small): every step runs, results are written, nothing PHI left a site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.integration
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env_home = tmp_path / "home"  # NVFlare writes under $HOME
    env_home.mkdir()
    env = {**os.environ, "HOME": str(env_home)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.demo",
            "--sites",
            "2",
            "--patients",
            "4",
            "--rounds",
            "1",
            "--workdir",
            str(workdir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = result.stdout
    for step in (
        "Generate synthetic hospitals",
        "Site nodes",
        "Hub on loopback",
        "publish",
        "Catalog search",
        "seg3d",
        "Results",
        "Privacy summary",
        "Back to the hospital",
        "Demo finished",
    ):
        assert step in out, step
    results = workdir / "results"
    clinical = json.loads((results / "clinical_inference.json").read_text())
    assert clinical["outputs"][:2] == ["seg", "sr"] and clinical["latency_s"] > 0
    for name in ("global_model.pt", "metrics.json", "dice_per_round.png", "report.html", "privacy.json"):
        assert (results / name).stat().st_size > 0, name
    privacy = json.loads((results / "privacy.json").read_text())
    assert privacy["phi_values_scanned"] > 100
    assert all(site["phi_hits"] == 0 and site["payloads"] >= 2 for site in privacy["sites"].values())
    assert not _processes_with_env(f"HUB_HOME={workdir / 'hub'}"), "the demo left its hub running"


def _processes_with_env(marker: str) -> list[int]:
    """PIDs whose environment contains ``marker`` (Linux /proc)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_demo_rejects_bad_arguments() -> None:
    from infra.demo.__main__ import main

    assert main(["--sites", "0"]) == 2
