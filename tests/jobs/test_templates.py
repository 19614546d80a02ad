"""Job templates: parameters, recipe building (no NVFlare run), fedstats privacy settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from central_hub.jobs.templates import check_params, list_templates, load_template
from common.errors import InputError


def test_templates_are_discovered() -> None:
    assert {"seg3d", "fedstats"} <= set(list_templates())


@pytest.mark.parametrize("aggregation", ["fedavg", "fedprox", "fedopt"])
def test_seg3d_builds_each_aggregation(tmp_path: Path, aggregation: str) -> None:
    module = load_template("seg3d")
    recipe = module.build_recipe(["site-a", "site-b"], {"aggregation": aggregation, "rounds": 1}, tmp_path)
    recipe.export(str(tmp_path / "export"))
    client_cfg = next((tmp_path / "export").rglob("config_fed_client.json")).read_text()
    assert "SiteOutboundFilter" in client_cfg
    custom = next((tmp_path / "export").rglob("fedimaging_job.json")).parent
    assert (custom / "client.py").exists()


def test_seg3d_params_are_checked() -> None:
    assert check_params("seg3d", {"rounds": 5})["rounds"] == 5
    assert check_params("seg3d", {})["lr_schedule"] == "constant"
    assert check_params("seg3d", {"lr_schedule": "cosine"})["lr_schedule"] == "cosine"


def test_seg3d_passes_the_lr_schedule_to_the_clients(tmp_path: Path) -> None:
    module = load_template("seg3d")
    recipe = module.build_recipe(["site-a"], {"rounds": 1, "lr_schedule": "cosine"}, tmp_path)
    recipe.export(str(tmp_path / "export"))
    client_cfg = next((tmp_path / "export").rglob("config_fed_client.json")).read_text()
    assert "--lr-schedule cosine" in client_cfg


@pytest.mark.parametrize(
    "params",
    [
        {"epochs": 5},
        {"rounds": 0},
        {"rounds": "3 --evil"},
        {"lr": -1},
        {"patch": [32, 32]},
        {"channels": [8]},
        {"device": "cpu --seed 1"},
        {"aggregation": "median"},
        {"cross_site_eval": "yes"},
        {"lr_schedule": "cosine --seed 1"},
        {"lr_schedule": "step"},
    ],
)
def test_seg3d_refuses_bad_params(params: dict) -> None:
    with pytest.raises(InputError):
        check_params("seg3d", params)


@pytest.mark.parametrize(
    "params", [{"min_count": 2}, {"min_noise_level": 0.5, "max_noise_level": 0.1}, {"x": 1}]
)
def test_fedstats_refuses_weak_privacy_settings(params: dict) -> None:
    with pytest.raises(InputError):
        check_params("fedstats", params)


def test_fedstats_builds(tmp_path: Path) -> None:
    recipe = load_template("fedstats").build_recipe(["site-a", "site-b"], {"min_count": 5}, tmp_path)
    recipe.export(str(tmp_path / "export"))
    assert list((tmp_path / "export").rglob("fedimaging_job.json"))


def test_evaluate_needs_a_checkpoint_from_the_hub(tmp_path: Path) -> None:
    from central_hub.jobs.templates import load_template

    module = load_template("evaluate")
    with pytest.raises(ValueError, match="checkpoint"):
        module.resolve_params({})
    with pytest.raises(ValueError, match="unknown evaluate parameter"):
        module.resolve_params({"checkpoint": "/x.pt", "rounds": 2})
    assert module.resolve_params({"checkpoint": "/x.pt"})["channels"] == [8, 16, 32]
