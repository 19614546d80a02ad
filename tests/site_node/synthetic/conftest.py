"""Fixtures: one small generated site per style, shared by the module's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from site_node.synthetic import generate_site


@pytest.fixture(scope="session", params=["a", "b", "c"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(output folder, truth) of a 3-patient site of each style."""
    out = tmp_path_factory.mktemp(f"synth_{request.param}") / "site"
    generate_site(out, patients=3, seed=11, style=request.param)
    return out, json.loads((out / "truth.json").read_text(encoding="utf-8"))
