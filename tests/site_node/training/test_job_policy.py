"""The seg3d client's own checks against the site's job policy (before any training)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from site_node.home import init_home
from site_node.training.approval import approve_template, stage_client_files
from site_node.training.client_loop import ClientConfig, admission, rounds_refusal
from site_node.training.site import SITE_MAP_ENV, write_site_map

SEG3D = Path(__file__).resolve().parents[3] / "jobs" / "seg3d"


@pytest.fixture
def approved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    home = tmp_path / "site-a"
    settings = init_home(home, "site-a")
    approve_template(home, "seg3d", SEG3D)
    monkeypatch.setenv(SITE_MAP_ENV, str(write_site_map(tmp_path / "map.json", {"site-a": home})))
    assert settings.job_policy.seg3d.max_patch == 128
    return home, stage_client_files(SEG3D, "seg3d", tmp_path / "job")


def test_training_options_beyond_the_site_policy_are_refused_before_training(approved) -> None:  # type: ignore[no-untyped-def]
    _, custom = approved
    _, refusal = admission("site-a", custom, ClientConfig(epochs=1000, patch=(512, 512, 512)))
    assert refusal == "refused by site site-a: local_epochs, patch outside the site's policy for seg3d"
    _, refusal = admission("site-a", custom, ClientConfig(epochs=2, patch=(32, 32, 16)))
    assert refusal is not None and "policy" not in refusal  # within policy: next gate (no curated set)


def test_rounds_beyond_the_site_policy_are_refused(approved) -> None:  # type: ignore[no-untyped-def]
    from common.config import load_site_settings

    home, _ = approved
    toml = home / "site.toml"
    toml.write_text(toml.read_text() + "\n[job_policy.seg3d]\nmax_rounds = 3\n")
    settings = load_site_settings(home)
    assert rounds_refusal(settings, SimpleNamespace(total_rounds=3, current_round=2)) is None
    assert "rounds outside" in (
        rounds_refusal(settings, SimpleNamespace(total_rounds=1000, current_round=0)) or ""
    )
    # a server that hides the total is stopped when it reaches the site's last round
    assert "rounds outside" in (
        rounds_refusal(settings, SimpleNamespace(total_rounds=None, current_round=3)) or ""
    )
