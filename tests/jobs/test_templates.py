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


def test_fedquery_builds_with_the_site_filter_and_the_result_recorder(tmp_path: Path) -> None:
    assert "fedquery" in list_templates()
    params = {"cohort": {"concept_ids": [4115276], "modality": "CT", "age_min": 40}}
    recipe = load_template("fedquery").build_recipe(["site-a", "site-b"], params, tmp_path)
    recipe.export(str(tmp_path / "export"))
    client_cfg = next((tmp_path / "export").rglob("config_fed_client.json")).read_text()
    server_cfg = next((tmp_path / "export").rglob("config_fed_server.json")).read_text()
    assert "SiteOutboundFilter" in client_cfg and "QueryResultRecorder" in server_cfg
    assert '"age_min": 40' in server_cfg  # the cohort definition travels as the task's metadata
    assert check_params("fedquery", {})["cohort"]["concept_ids"] == []
    from common.job_params import params_schema

    assert "cohort" in params_schema()["fedquery"]["properties"]  # published at GET /job-templates


def test_evaluate_takes_its_checkpoint_from_the_hub(tmp_path: Path) -> None:
    from central_hub.jobs.templates import load_template
    from common.errors import InputError

    module = load_template("evaluate")
    card = {"model_name": "seg3d", "model_version": 1, "checkpoint": "/x.pt", "sha256": "a" * 64}
    with pytest.raises(InputError) as missing:
        module.resolve_params({})
    assert missing.value.field
    with pytest.raises(InputError) as extra:
        module.resolve_params({**card, "rounds": 2})
    assert extra.value.field == "params.rounds"
    with pytest.raises(InputError) as relative:
        module.resolve_params({**card, "checkpoint": "x.pt"})
    assert relative.value.field == "params.checkpoint"
    assert module.resolve_params(card)["channels"] == [8, 16, 32]
