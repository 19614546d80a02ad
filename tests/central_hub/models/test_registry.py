"""Model registry: a finished training job publishes a version; cards, files, plot, CLI, web page."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from central_hub.jobs import service
from central_hub.jobs.runners import RunnerStatus, job_dir

WEIGHTS = b"global weights of the run"


class RecordingRunner:
    """Leaves what the seg3d server records: per-round metrics with dataset versions, and a model."""

    name = "recording"

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def start(self, job_id: str, template: str, params: dict[str, Any], sites: list[str]) -> str:
        run = job_dir(self.settings, job_id) / "workspace" / "server" / "simulate_job"
        run.mkdir(parents=True)
        records = [
            {
                "site": site,
                "round": r,
                "task": "train",
                "metrics": {"val_dice": 0.1 * (r + 1) + 0.05 * i},
                "n_train": 3,
                "dataset_version": f"sha256:{i:064d}",
            }
            for i, site in enumerate(sites)
            for r in range(int(params.get("rounds", 1)))
        ]
        (run / "fedimaging_metrics.json").write_text(json.dumps(records))
        (run / "app_server").mkdir()
        (run / "app_server" / "FL_global_model.pt").write_bytes(WEIGHTS)
        return "nv-1"

    def poll(self, job_id: str, nvflare_job_id: str | None) -> RunnerStatus:
        return RunnerStatus("finished")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, hub_settings: Any, tokens: Any) -> RecordingRunner:
    from tests.central_hub.jobs.test_jobs_api import approve_project

    recording = RecordingRunner(hub_settings)
    monkeypatch.setattr(service, "get_runner", lambda settings: recording)
    approve_project(hub_settings, "study", "researcher-user", ["site-a", "site-b"], ["seg3d", "evaluate"])
    return recording


def _train(client: Any, tokens: Any, rounds: int = 2, **params: Any) -> str:
    body = {
        "template": "seg3d",
        "sites": ["site-a", "site-b"],
        "params": {"rounds": rounds, **params},
        "project": "study",
    }
    job_id = client.post("/jobs", json=body, headers=tokens.headers("researcher")).json()["id"]
    assert client.get(f"/jobs/{job_id}", headers=tokens.headers("researcher")).json()["state"] == "finished"
    return job_id


def test_a_finished_job_publishes_a_versioned_model(
    client: Any, tokens: Any, runner: RecordingRunner
) -> None:
    from central_hub.jobs.templates import template_dir
    from common.digest import template_digest

    job_id = _train(client, tokens)
    listed = client.get("/models", headers=tokens.headers("researcher")).json()["models"]
    assert [(m["name"], m["version"]) for m in listed] == [("seg3d", 1)]
    card = client.get("/models/seg3d/1", headers=tokens.headers("site_a")).json()
    assert card["job_id"] == job_id and card["rounds"] == 2
    assert card["template_digest"] == template_digest(template_dir("seg3d"))
    assert card["training_sites"] == ["site-a", "site-b"]
    assert card["site_metrics"]["site-b"]["val_dice_by_round"] == pytest.approx([0.15, 0.25])
    assert card["dataset_versions"] == {"site-a": f"sha256:{0:064d}", "site-b": f"sha256:{1:064d}"}
    assert card["model_args"] == {"channels": [8, 16, 32], "patch": [32, 32, 16]}
    assert card["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    r = client.get("/models/seg3d/latest/file", headers=tokens.headers("site_a"))
    assert r.content == WEIGHTS and r.headers["x-model-sha256"] == card["sha256"]
    png = client.get("/models/seg3d/1/plot.png", headers=tokens.headers("researcher"))
    assert png.content.startswith(b"\x89PNG")
    # refreshing the finished job again publishes nothing more; a second job is version 2
    client.get(f"/jobs/{job_id}", headers=tokens.headers("researcher"))
    _train(client, tokens, rounds=1, model_name="lung-lesion")
    _train(client, tokens, rounds=3)
    names = [
        (m["name"], m["version"])
        for m in client.get("/models", headers=tokens.headers("hub_admin")).json()["models"]
    ]
    assert names == [("lung-lesion", 1), ("seg3d", 2), ("seg3d", 1)]
    assert client.get("/models/seg3d/latest", headers=tokens.headers("site_a")).json()["rounds"] == 3


def test_downloads_are_audited_and_unknown_versions_are_404(
    client: Any, tokens: Any, runner: RecordingRunner, hub_settings: Any
) -> None:
    from central_hub.audit import list_audit
    from central_hub.db import session_factory

    _train(client, tokens)
    client.get("/models/seg3d/1/file", headers=tokens.headers("site_a"))
    with session_factory(hub_settings.database_url)() as session:
        events = list_audit(session, action="model.download")
    assert [e.detail for e in events] == [{"model": "seg3d", "version": 1}]
    for path in ("/models/seg3d/9", "/models/nope/latest", "/models/seg3d/x/file"):
        assert client.get(path, headers=tokens.headers("researcher")).status_code == 404
    assert client.get("/models", headers=tokens.headers("searcher")).status_code == 403


def test_cli_model_list_and_show(
    hub_settings: Any, client: Any, tokens: Any, runner: RecordingRunner, capsys
) -> None:  # type: ignore[no-untyped-def]
    from central_hub.cli import main

    _train(client, tokens)
    home = str(hub_settings.home)
    for argv in (["model", "list", "--home", home, "--json"], ["model", "show", "seg3d:1", "--home", home]):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code in (0, None)
    out = capsys.readouterr().out
    listed = json.loads(out.splitlines()[0])
    assert listed["models"][0]["name"] == "seg3d"
    assert "site-b" in out and "val_dice=0.250" in out and "dataset sha256:" in out


def test_web_page_lists_models_with_their_plot(client: Any, tokens: Any, runner: RecordingRunner) -> None:
    assert client.get("/web/models", follow_redirects=False).status_code == 303
    _train(client, tokens)
    client.cookies.set("hub_token", tokens.researcher)
    page = client.get("/web/models").text
    assert 'id="model-seg3d-1"' in page and 'src="/models/seg3d/1/plot.png"' in page
    assert 'data-site="site-a" data-role="training"' in page
    assert client.get("/models/seg3d/1/plot.png").content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 422),
        ({"model": "nope"}, 404),
        ({"model": "seg3d:7"}, 404),
        ({"model": "seg3d", "checkpoint": "/etc/passwd"}, 422),
        ({"model": "Bad Name"}, 422),
    ],
)
def test_evaluate_jobs_name_a_registry_model(
    client: Any, tokens: Any, runner: RecordingRunner, params: dict, status: int
) -> None:
    _train(client, tokens)
    body = {"template": "evaluate", "sites": ["site-a"], "params": params, "project": "study"}
    r = client.post("/jobs", json=body, headers=tokens.headers("researcher"))
    assert r.status_code == status, r.text
