"""Typed job parameters at the hub: 422 naming the parameter, the published schema, the quota."""

from __future__ import annotations

from typing import Any

import pytest

from central_hub.jobs import service
from central_hub.jobs.runners import RunnerStatus
from tests.central_hub.jobs.test_jobs_api import FakeRunner, approve_project


class BusyRunner(FakeRunner):
    """A runner whose jobs keep running until told otherwise."""

    done: set[str]

    def poll(self, job_id: str, nvflare_job_id: str | None) -> RunnerStatus:
        return RunnerStatus("finished" if job_id in self.done else "running")


@pytest.fixture
def busy_runner(monkeypatch: pytest.MonkeyPatch, hub_settings: Any) -> BusyRunner:
    runner = BusyRunner(hub_settings)
    runner.done = set()
    monkeypatch.setattr(service, "get_runner", lambda settings: runner)
    return runner


@pytest.mark.parametrize(
    ("template", "params", "field"),
    [
        ("fedstats", {"min_noise_level": 0}, "params.min_noise_level"),
        ("fedstats", {"bins": 1_000_000}, "params.bins"),
        ("fedstats", {"max_bins_percent": 1e9}, "params.max_bins_percent"),
        ("fedstats", {"max_bins_percent": -5}, "params.max_bins_percent"),
        ("fedstats", {"min_count": 2}, "params.min_count"),
        ("seg3d", {"rounds": 1000}, "params.rounds"),
        ("seg3d", {"local_epochs": 1000}, "params.local_epochs"),
        ("seg3d", {"patch": [512, 512, 512]}, "params.patch"),
        ("seg3d", {"rounds": "3 --evil"}, "params.rounds"),
        ("seg3d", {"rounds": True}, "params.rounds"),
        ("seg3d", {"lr_schedule": "cosine --seed 1"}, "params.lr_schedule"),
        ("seg3d", {"secret_patient_name": 1}, "params.secret_patient_name"),
    ],
)
def test_out_of_bounds_parameters_are_422_naming_the_parameter_not_the_value(
    client: Any, tokens: Any, busy_runner: BusyRunner, template: str, params: dict, field: str
) -> None:
    body = {"template": template, "sites": ["site-a"], "params": params}
    r = client.post("/jobs", json=body, headers=tokens.headers("researcher"))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    value = next(iter(params.values()))
    for shown in (str(value), repr(value)):
        if len(shown) > 2:  # "2" or "0" also appear in bounds; longer values must not be echoed
            assert shown not in r.json()["message"]


def test_the_parameter_schema_is_published(client: Any, tokens: Any) -> None:
    r = client.get("/job-templates", headers=tokens.headers("researcher"))
    assert r.status_code == 200
    templates = r.json()["templates"]
    fedstats = templates["fedstats"]["parameters"]["properties"]
    assert fedstats["max_bins_percent"]["maximum"] == 10 and fedstats["min_noise_level"]["minimum"] == 0.1
    seg3d = templates["seg3d"]["parameters"]["properties"]
    assert seg3d["rounds"]["maximum"] == 100
    assert client.get("/job-templates").status_code == 401


def test_concurrent_jobs_per_researcher_are_capped(
    client: Any, tokens: Any, busy_runner: BusyRunner, hub_settings: Any
) -> None:
    approve_project(
        hub_settings, "study", "researcher-user", ["site-a"], ["seg3d"]
    )  # jobs belong to a project
    body = {"template": "seg3d", "sites": ["site-a"], "params": {"rounds": 1}, "project": "study"}
    headers = tokens.headers("researcher")
    first = client.post("/jobs", json=body, headers=headers)
    second = client.post("/jobs", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    third = client.post("/jobs", json=body, headers=headers)
    assert third.status_code == 429 and "quota" in third.json()["message"]
    assert third.json()["field"] == "max_concurrent_jobs_per_researcher"
    busy_runner.done.add(first.json()["id"])  # one ends: room for one more
    assert client.post("/jobs", json=body, headers=headers).status_code == 201
