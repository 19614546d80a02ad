"""Site homes with tiny curated sets and a hub that runs jobs in the NVFlare simulator."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_site(root: Path, name: str, patients: int, seed: int, style: str, approve: bool) -> Path:
    """An initialised site home with a toy curated set, approving seg3d when ``approve``."""
    from site_node.home import init_home
    from site_node.training.approval import approve_template
    from site_node.training.toy_data import write_toy_curated

    home = root / name
    init_home(home, name)
    write_toy_curated(home, patients=patients, seed=seed, style=style, shape=(24, 24, 16))
    if approve:
        approve_template(home, "seg3d", Path(__file__).resolve().parents[2] / "jobs" / "seg3d")
    return home


@pytest.fixture
def nvflare_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NVFlare writes under $HOME: point it at a temporary folder."""
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home
