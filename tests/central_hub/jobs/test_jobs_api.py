"""Hub job API and CLI with a stand-in runner (the NVFlare path is in tests/jobs)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from central_hub.jobs import service
from central_hub.jobs.runners import RunnerStatus, job_dir


class FakeRunner:
    """Writes what an NVFlare server would leave behind: metric records, a refusal and a model."""

    name = "fake"

    def __init__(self, settings: Any, refuse: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.refuse = refuse

    def start(self, job_id: str, template: str, params: dict[str, Any], sites: list[str]) -> str:
        run = job_dir(self.settings, job_id) / "workspace" / "server" / "simulate_job"
        run.mkdir(parents=True)
        records: list[dict[str, Any]] = []
        for site in sites:
            if site in self.refuse:
                records.append(
                    {
                        "site": site,
                        "round": 0,
                        "task": "train",
                        "metrics": {},
                        "refused": f"refused by site {site}: job template {template} is not approved",
                    }
                )
                continue
            records += [
                {
                    "site": site,
                    "round": r,
                    "task": "train",
                    "device": "cpu",
                    "metrics": {"val_dice": 0.2 * (r + 1), "train_loss": 1.0 - 0.1 * r},
                }
                for r in range(int(params["rounds"]))
            ]
        (run / "fedimaging_metrics.json").write_text(json.dumps(records))
        (run / "app_server").mkdir()
        (run / "app_server" / "FL_global_model.pt").write_bytes(b"weights")
        return "nvflare-123"

    def poll(self, job_id: str, nvflare_job_id: str | None) -> RunnerStatus:
        return RunnerStatus("finished")


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch, hub_settings: Any, tokens: Any) -> FakeRunner:
    runner = FakeRunner(hub_settings, refuse=("site-c",))
    monkeypatch.setattr(service, "get_runner", lambda settings: runner)
    approve_project(hub_settings, "study", "researcher-user", ["site-a", "site-b", "site-c"], ["seg3d"])
    return runner


def approve_project(settings: Any, project: str, member: str, sites: list[str], templates: list[str]) -> int:
    """A project with ``member``, one access request and every site's approval (as the sites would send)."""
    import datetime as dt

    from central_hub.auth.tokens import Principal
    from central_hub.catalog.crud import create_site
    from central_hub.catalog.models import Site
    from central_hub.db import session_factory
    from central_hub.projects import service as projects

    with session_factory(settings.database_url)() as session:
        for name in sites:
            if session.query(Site).filter_by(name=name).first() is None:
                create_site(session, name, "DE", 5)
        session.flush()
        projects.create_project(session, project, None, sites)
        projects.add_member(session, project, member)
        who = Principal(token_id=0, name=member, role="researcher")
        body = {"project": project, "sites": sites, "templates": templates, "justification": "tests need it"}
        request = projects.file_request(session, who, body)
        until = dt.date.today() + dt.timedelta(days=30)
        for name in sites:
            site = Principal(token_id=0, name=name, role="site", site_id=1, site_name=name)
            projects.record_decision(session, site, request.id, {"decision": "approved", "until": until})
        session.commit()
        return request.id


def test_submit_status_model_report(client: Any, tokens: Any, fake_runner: FakeRunner) -> None:
    body = {"template": "seg3d", "sites": ["site-a", "site-b"], "params": {"rounds": 2}, "project": "study"}
    r = client.post("/jobs", json=body, headers=tokens.headers("researcher"))
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert r.json()["nvflare_job_id"] == "nvflare-123"

    r = client.get(f"/jobs/{job_id}", headers=tokens.headers("researcher"))
    job = r.json()
    assert job["state"] == "finished" and job["round"] == 2
    assert set(job["site_metrics"]) == {"site-a", "site-b"}
    assert job["site_metrics"]["site-a"][1]["val_dice"] == pytest.approx(0.4)

    r = client.get(f"/jobs/{job_id}/model", headers=tokens.headers("researcher"))
    assert r.status_code == 200 and r.content == b"weights"

    r = client.get(f"/jobs/{job_id}/report", headers=tokens.headers("researcher"))
    report = r.json()
    assert report["metrics"]["rounds"]["site-b"][0]["val_dice"] == pytest.approx(0.2)
    assert base64.b64decode(report["plot_png_base64"]).startswith(b"\x89PNG")
    r = client.get(f"/jobs/{job_id}/report.png", headers=tokens.headers("researcher"))
    assert r.headers["content-type"] == "image/png"

    listed = client.get("/jobs", headers=tokens.headers("hub_admin")).json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]


def test_submission_is_audited(client: Any, tokens: Any, fake_runner: FakeRunner, hub_settings: Any) -> None:
    from central_hub.audit import list_audit
    from central_hub.db import session_factory

    client.post(
        "/jobs",
        json={"template": "seg3d", "sites": ["site-a"], "project": "study"},
        headers=tokens.headers("researcher"),
    )
    with session_factory(hub_settings.database_url)() as session:
        events = list_audit(session, action="job.submit")
    assert len(events) == 1 and events[0].actor == "researcher:researcher-user"
    assert events[0].detail["sites"] == ["site-a"]


def test_refusing_site_is_reported(client: Any, tokens: Any, fake_runner: FakeRunner) -> None:
    body = {"template": "seg3d", "sites": ["site-a", "site-c"], "params": {"rounds": 1}, "project": "study"}
    job_id = client.post("/jobs", json=body, headers=tokens.headers("researcher")).json()["id"]
    job = client.get(f"/jobs/{job_id}", headers=tokens.headers("researcher")).json()
    assert "refused by site site-c" in job["message"]
    assert set(job["refusals"]) == {"site-c"}
    all_refused = client.post(
        "/jobs", json={**body, "sites": ["site-c"]}, headers=tokens.headers("researcher")
    )
    job = client.get(f"/jobs/{all_refused.json()['id']}", headers=tokens.headers("researcher")).json()
    assert job["state"] == "refused"


@pytest.mark.parametrize(("role", "status"), [("searcher", 403), ("site_a", 403), ("hub_admin", 403)])
def test_only_researchers_submit(
    client: Any, tokens: Any, fake_runner: FakeRunner, role: str, status: int
) -> None:
    r = client.post("/jobs", json={"template": "seg3d", "sites": ["site-a"]}, headers=tokens.headers(role))
    assert r.status_code == status


def test_reading_jobs_needs_a_token_and_role(client: Any, tokens: Any, fake_runner: FakeRunner) -> None:
    assert client.get("/jobs").status_code == 401
    assert client.get("/jobs", headers=tokens.headers("searcher")).status_code == 403
    assert client.get("/jobs/nope", headers=tokens.headers("researcher")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"template": "nope", "sites": ["site-a"]},
        {"template": "seg3d", "sites": ["site-a"], "params": {"unknown": 1}},
        {"template": "seg3d", "sites": ["site-a"], "params": {"aggregation": "median"}},
        {"template": "seg3d", "sites": ["Site A"]},
        {"template": "seg3d", "sites": []},
    ],
)
def test_bad_submissions_are_refused(client: Any, tokens: Any, fake_runner: FakeRunner, body: dict) -> None:
    r = client.post("/jobs", json={**body, "project": "study"}, headers=tokens.headers("researcher"))
    assert r.status_code in (404, 422), r.text


def _cli(argv: list[str]) -> None:
    from central_hub.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)


def test_cli_submit_list_show(
    hub_settings: Any, fake_runner: FakeRunner, capsys: pytest.CaptureFixture
) -> None:
    home = str(hub_settings.home)
    _cli(
        [
            "job",
            "submit",
            "seg3d",
            "--sites",
            "site-a,site-b",
            "--param",
            "rounds=3",
            "--home",
            home,
            "--json",
        ]
    )
    job = json.loads(capsys.readouterr().out)
    assert job["params"]["rounds"] == 3 and job["sites"] == ["site-a", "site-b"]
    _cli(["job", "show", job["id"], "--home", home])
    out = capsys.readouterr().out
    assert "finished" in out and "site-a: rounds=3" in out
    _cli(["job", "list", "--home", home, "--json"])
    assert len(json.loads(capsys.readouterr().out)["jobs"]) == 1


def test_simulator_runner_refuses_sites_without_a_home(hub_settings: Any) -> None:
    from central_hub.jobs.runners import SimulatorRunner
    from common.errors import InputError

    with pytest.raises(InputError, match="no home configured"):
        SimulatorRunner(hub_settings).start("j1", "seg3d", {}, ["site-z"])


def test_cli_submit_in_a_project_is_refused_until_the_sites_approve(
    hub_settings: Any, fake_runner: FakeRunner, capsys: pytest.CaptureFixture
) -> None:
    from central_hub.cli import main
    from central_hub.db import session_factory
    from central_hub.projects import service

    with session_factory(hub_settings.database_url)() as session:
        service.create_project(session, "operator-study", None, ["site-a"])
        session.commit()
    argv = ["job", "submit", "seg3d", "--sites", "site-a", "--project", "operator-study"]
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--home", str(hub_settings.home)])
    assert refused.value.code not in (0, None)
    assert "site-a" in capsys.readouterr().err
