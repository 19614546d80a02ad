"""Projects and access requests at the hub: members file, sites decide, outsiders see nothing."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from central_hub.jobs import service
from tests.central_hub.jobs.test_jobs_api import FakeRunner

SOON = (dt.date.today() + dt.timedelta(days=60)).isoformat()


def _cli(argv: list[str], capsys: pytest.CaptureFixture) -> Any:
    from central_hub.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)
    return json.loads(capsys.readouterr().out)


def _make_token(settings: Any, name: str) -> str:
    from central_hub.auth.tokens import create_token
    from central_hub.db import session_factory

    with session_factory(settings.database_url)() as session:
        clear = create_token(session, role="researcher", name=name)[1]
        session.commit()
    return clear


@pytest.fixture
def project(hub_settings: Any, tokens: Any, capsys: pytest.CaptureFixture) -> dict[str, Any]:
    """Project 'lung' (sites a and b) with the fixture's researcher as member, made through the CLI."""
    home = str(hub_settings.home)
    made = _cli(["project", "create", "lung", "--title", "Lung study", "--sites", "site-a,site-b",
                 "--home", home, "--json"], capsys)  # fmt: skip
    assert made["sites"] == ["site-a", "site-b"]
    _cli(
        ["project", "add-member", "lung", "--token-name", "researcher-user", "--home", home, "--json"], capsys
    )
    return _cli(["project", "show", "lung", "--home", home, "--json"], capsys)


def _request(client: Any, tokens: Any, **extra: Any) -> Any:
    body = {
        "project": "lung",
        "sites": ["site-a", "site-b"],
        "templates": ["seg3d"],
        "justification": "Validate a lung nodule model on two sites.",
        **extra,
    }
    return client.post("/access-requests", json=body, headers=tokens.headers("researcher"))


def _decide(client: Any, tokens: Any, role: str, request_id: int, body: dict[str, Any]) -> Any:
    return client.post(f"/access-requests/{request_id}/decision", json=body, headers=tokens.headers(role))


def test_project_cli_lists_members(project: dict[str, Any], hub_settings: Any, capsys) -> None:  # type: ignore[no-untyped-def]
    assert project["members"] == ["researcher-user"] and project["title"] == "Lung study"
    listed = _cli(["project", "list", "--home", str(hub_settings.home), "--json"], capsys)
    assert [p["name"] for p in listed["projects"]] == ["lung"]


def test_request_then_each_site_decides(client: Any, tokens: Any, project: dict[str, Any]) -> None:
    r = _request(client, tokens, end_date=SOON, collections=["ct-chest"])
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert {s: d["state"] for s, d in r.json()["decisions"].items()} == {
        "site-a": "pending",
        "site-b": "pending",
    }

    listed = client.get("/site/access-requests", headers=tokens.headers("site_a")).json()["requests"]
    assert [q["id"] for q in listed] == [rid] and listed[0]["justification"].startswith("Validate")

    assert _decide(client, tokens, "site_a", rid, {"decision": "approved", "until": SOON}).status_code == 200
    r = _decide(client, tokens, "site_b", rid, {"decision": "denied", "reason": "ethics approval missing"})
    view = client.get(f"/access-requests/{rid}", headers=tokens.headers("researcher")).json()
    assert view["decisions"]["site-a"]["state"] == "approved"
    assert view["decisions"]["site-b"] == {**view["decisions"]["site-b"], "state": "denied",
                                           "reason": "ethics approval missing"}  # fmt: skip


def test_decisions_are_audited_at_the_hub(client: Any, tokens: Any, project: Any, hub_settings: Any) -> None:
    from central_hub.audit import list_audit
    from central_hub.db import session_factory

    rid = _request(client, tokens).json()["id"]
    _decide(client, tokens, "site_b", rid, {"decision": "denied", "reason": "no capacity this year"})
    with session_factory(hub_settings.database_url)() as session:
        actions = {(e.actor, e.action) for e in list_audit(session)}
    assert ("researcher:researcher-user", "access.request") in actions
    assert ("site:site-b", "access.deny") in actions


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "approved"},  # no end date
        {"decision": "denied"},  # no reason
        {"decision": "approved", "until": SOON, "templates": ["fedstats"]},  # not requested
    ],
)
def test_bad_decisions_are_refused(client: Any, tokens: Any, project: Any, body: dict[str, Any]) -> None:
    rid = _request(client, tokens).json()["id"]
    assert _decide(client, tokens, "site_a", rid, body).status_code == 422


def test_a_site_not_named_cannot_see_or_decide(client: Any, tokens: Any, project: Any) -> None:
    rid = _request(client, tokens, sites=["site-a"]).json()["id"]
    assert client.get("/site/access-requests", headers=tokens.headers("site_b")).json()["requests"] == []
    assert client.get(f"/access-requests/{rid}", headers=tokens.headers("site_b")).status_code == 404
    r = _decide(client, tokens, "site_b", rid, {"decision": "approved", "until": SOON})
    assert r.status_code == 404


def test_an_outsider_sees_no_request_job_or_result(
    client: Any, tokens: Any, project: Any, hub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = FakeRunner(hub_settings)
    monkeypatch.setattr(service, "get_runner", lambda settings: runner)
    rid = _request(client, tokens, end_date=SOON).json()["id"]
    for role in ("site_a", "site_b"):
        _decide(client, tokens, role, rid, {"decision": "approved"})
    body = {"template": "seg3d", "project": "lung", "sites": ["site-a", "site-b"], "params": {"rounds": 1}}
    job = client.post("/jobs", json=body, headers=tokens.headers("researcher"))
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]

    outsider = {"Authorization": f"Bearer {_make_token(hub_settings, 'mallory')}"}
    assert client.get("/access-requests", headers=outsider).json()["requests"] == []
    assert client.get(f"/access-requests/{rid}", headers=outsider).status_code == 404
    assert client.get("/jobs", headers=outsider).json()["jobs"] == []
    for path in ("", "/report", "/report.png", "/model", "/query"):
        assert client.get(f"/jobs/{job_id}{path}", headers=outsider).status_code == 404, path
    r = _request(client, _Headers(outsider))
    assert r.status_code == 404  # filing for a project one is not in: the project does not exist for them
    r = client.post("/jobs", json=body, headers=outsider)
    assert r.status_code == 404
    # the member sees all of it
    assert client.get(f"/jobs/{job_id}/report", headers=tokens.headers("researcher")).status_code == 200


class _Headers:
    """Stands in for the tokens fixture with one researcher's headers."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def headers(self, _role: str) -> dict[str, str]:
        return self._headers


def test_submit_names_the_sites_that_have_not_approved(
    client: Any, tokens: Any, project: Any, hub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = FakeRunner(hub_settings)
    monkeypatch.setattr(service, "get_runner", lambda settings: runner)
    rid = _request(client, tokens).json()["id"]
    _decide(client, tokens, "site_a", rid, {"decision": "approved", "until": SOON})
    _decide(client, tokens, "site_b", rid, {"decision": "denied", "reason": "ethics approval missing"})
    body = {"template": "seg3d", "project": "lung", "sites": ["site-a", "site-b"], "params": {"rounds": 1}}
    r = client.post("/jobs", json=body, headers=tokens.headers("researcher"))
    assert r.status_code == 403
    message = r.json()["message"]
    assert "site-b (denied: ethics approval missing)" in message and "site-a" not in message
    r = client.post(
        "/jobs", json={**body, "template": "fedstats", "params": {}}, headers=tokens.headers("researcher")
    )
    assert r.status_code == 403 and "site-a (template fedstats not approved)" in r.json()["message"]
    ok = client.post("/jobs", json={**body, "sites": ["site-a"]}, headers=tokens.headers("researcher"))
    assert ok.status_code == 201, ok.text


def test_an_expired_approval_is_refused(
    client: Any, tokens: Any, project: Any, hub_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from central_hub.db import session_factory
    from central_hub.projects.models import AccessDecision

    runner = FakeRunner(hub_settings)
    monkeypatch.setattr(service, "get_runner", lambda settings: runner)
    rid = _request(client, tokens).json()["id"]
    _decide(client, tokens, "site_a", rid, {"decision": "approved", "until": SOON})
    with session_factory(hub_settings.database_url)() as session:  # time passes: the approval ends
        row = session.query(AccessDecision).filter_by(request_id=rid).one()
        row.until = dt.date.today() - dt.timedelta(days=1)
        session.commit()
    view = client.get(f"/access-requests/{rid}", headers=tokens.headers("researcher")).json()
    assert view["decisions"]["site-a"]["state"] == "expired"
    body = {"template": "seg3d", "project": "lung", "sites": ["site-a"], "params": {"rounds": 1}}
    r = client.post("/jobs", json=body, headers=tokens.headers("researcher"))
    assert r.status_code == 403 and "approval ended on" in r.json()["message"]


@pytest.mark.parametrize(
    "extra",
    [
        {"sites": ["site-z"]},  # not registered
        {"templates": ["nope"]},
        {"end_date": "2001-01-01"},
        {"justification": "short"},
        {"project": "Not A Name"},
    ],
)
def test_bad_requests_are_refused(client: Any, tokens: Any, project: Any, extra: dict[str, Any]) -> None:
    assert _request(client, tokens, **extra).status_code == 422
