"""Request -> site approval -> a fedquery job runs in the NVFlare simulator; a denying site refuses it.

A real hub server (uvicorn) runs the job in NVFlare's simulator with two real site homes holding
OMOP data. site-a approves the project's request at the site, site-b denies it. The hub refuses a
job naming site-b (403 with the reason); when the hub is made to claim site-b approved, site-b still
refuses the job itself and the researcher sees who refused and why. Everything released holds no
count below k and every released Kaplan-Meier step rests on at least k persons.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
SOON = dt.date.today() + dt.timedelta(days=90)
REASON = "no ethics approval for survival analyses"
ARTIFACTS = ROOT / "test-artifacts" / "central_hub"


@pytest.fixture
def site_homes(tmp_path: Path) -> dict[str, Path]:
    """site-a (150 NSCLC CT patients, 6 MR) and site-b (40 and 6), both approving the fedquery template."""
    from site_node.home import init_home, open_site
    from site_node.training.approval import approve_template
    from tests.site_node.query.conftest import survival_cohort, write_survival_cohort

    homes = {}
    for name, n, seed in (("site-a", 150, 1), ("site-b", 40, 2)):
        home = tmp_path / name
        init_home(home, name)
        write_survival_cohort(open_site(home).engine, survival_cohort(n, seed))
        approve_template(home, "fedquery", ROOT / "jobs" / "fedquery")
        homes[name] = home
    return homes


@pytest.fixture
def hub_db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def hub_settings(tmp_path: Path, hub_db_url: str, site_homes: dict[str, Path]) -> Any:
    """A hub whose simulator runs one client per site home."""
    from central_hub.home import init_hub
    from common.config import load_hub_settings

    settings = init_hub(tmp_path / "hub", hub_db_url)
    lines = ["", "[simulator_sites]", *(f'{name} = "{home}"' for name, home in site_homes.items())]
    toml = settings.home / "hub.toml"
    toml.write_text(toml.read_text() + "\n".join(lines) + "\n")
    return load_hub_settings(settings.home)


def _site_cli(args: list[str], capsys: pytest.CaptureFixture) -> None:
    from tests.conftest import run_site_cli

    code, _, err = run_site_cli(args, capsys)
    assert code == 0, err


def _wait(url: str, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}", headers=headers, timeout=30).json()
        if job["state"] in ("finished", "failed", "refused"):
            return job
        time.sleep(2)
    raise AssertionError("the fedquery job did not end in time")


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [i for v in value.values() for i in _ints(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ints(v)]
    return []


def test_request_approval_job_and_refusal(
    live_hub: str,
    tokens: Any,
    hub_settings: Any,
    site_homes: dict[str, Path],
    capsys: pytest.CaptureFixture,
) -> None:
    from central_hub.db import session_factory
    from central_hub.projects import service
    from central_hub.projects.models import AccessDecision
    from site_node.home import open_site
    from site_node.outbound import list_ledger

    with session_factory(hub_settings.database_url)() as session:
        service.create_project(session, "lung", "Lung survival", ["site-a", "site-b"])
        service.add_member(session, "lung", "researcher-user")
        session.commit()
    researcher = tokens.headers("researcher")
    request = {
        "project": "lung",
        "sites": ["site-a", "site-b"],
        "templates": ["fedquery"],
        "justification": "Survival of CT-detected NSCLC by site.",
        "end_date": SOON.isoformat(),
    }
    rid = httpx.post(f"{live_hub}/access-requests", json=request, headers=researcher).json()["id"]
    _site_cli(["requests", "approve", str(rid), "--home", str(site_homes["site-a"]),
               "--hub", live_hub, "--token", tokens.site_a], capsys)  # fmt: skip
    _site_cli(["requests", "deny", str(rid), "--reason", REASON, "--home", str(site_homes["site-b"]),
               "--hub", live_hub, "--token", tokens.site_b], capsys)  # fmt: skip

    params = {"cohort": {"concept_ids": [4115276], "modality": "CT"}, "horizon_days": 1440}
    body = {"template": "fedquery", "project": "lung", "sites": ["site-a", "site-b"], "params": params}
    refused = httpx.post(f"{live_hub}/jobs", json=body, headers=researcher)
    assert refused.status_code == 403 and f"site-b (denied: {REASON})" in refused.json()["message"]

    # the hub is made to say site-b approved: site-b refuses the job on its own record
    with session_factory(hub_settings.database_url)() as session:
        row = session.query(AccessDecision).filter_by(request_id=rid, site="site-b").one()
        row.decision, row.templates, row.until, row.reason = "approved", ["fedquery"], SOON, None
        session.commit()
    submitted = httpx.post(f"{live_hub}/jobs", json=body, headers=researcher, timeout=60)
    assert submitted.status_code == 201, submitted.text
    job = _wait(live_hub, researcher, submitted.json()["id"])
    assert job["state"] == "finished", job
    assert "site-b" in job["refusals"] and REASON in job["refusals"]["site-b"]
    assert "site-a" not in job["refusals"]

    r = httpx.get(f"{live_hub}/jobs/{job['id']}/query", headers=researcher, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    site_a = answer["query"]["sites"]["site-a"]
    assert abs(site_a["persons"] - 150) < 5 and site_a["floor_k"] == 10  # cell-key perturbed (base 5)
    assert answer["query"]["sites"]["site-b"]["refused"].endswith(REASON)
    k = 10
    counts = [site_a["persons"], *site_a["by_sex"].values(), *site_a["by_age_band"].values()]
    assert all(not isinstance(c, int) or c == 0 or c >= k for c in counts)
    for table in (site_a["survival"], answer["query"]["pooled"]["survival"]):
        assert table["rows"], table
        for step in table["rows"]:  # every released step rests on k or more
            assert step["at_risk"] >= k
            assert step["events"] == 0 or step["events"] >= k
            assert step["censored"] == 0 or step["censored"] >= k
    assert len(answer["query"]["pooled"]["curve"]) == len(answer["query"]["pooled"]["survival"]["rows"])
    png = base64.b64decode(answer["plot_png_base64"])
    assert png.startswith(b"\x89PNG")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "fedquery-km.png").write_bytes(png)
    (ARTIFACTS / "fedquery-query.json").write_text(json.dumps(answer["query"], indent=1))
    assert any(row["site"] == "site-b" and REASON in row["note"] for row in answer["table"])

    # the same on the page: a table and the plot
    page = httpx.get(f"{live_hub}/access/jobs/{job['id']}", cookies={"hub_token": tokens.researcher}).text
    assert 'id="query-table"' in page and f'src="/jobs/{job["id"]}/query.png"' in page
    assert f'<tr data-site="site-a"><td>site-a</td><td>{site_a["persons"]}</td>' in page and REASON in page
    plot = httpx.get(f"{live_hub}/jobs/{job['id']}/query.png", cookies={"hub_token": tokens.researcher})
    assert plot.status_code == 200 and plot.content == png

    # everything that left site-a is in its ledger; the query result's exact bytes among them
    ledger = list_ledger(open_site(site_homes["site-a"]).engine)
    assert [r["kind"] for r in ledger if r["job_id"]] == ["query_result"]
    refusal = [r for r in list_ledger(open_site(site_homes["site-b"]).engine) if r["job_id"]]
    assert [r["kind"] for r in refusal] == ["refusal"]

    # an outsider sees none of it
    from tests.central_hub.projects.test_access_api import _make_token

    outsider = {"Authorization": f"Bearer {_make_token(hub_settings, 'mallory')}"}
    assert httpx.get(f"{live_hub}/jobs/{job['id']}/query", headers=outsider).status_code == 404
    assert json.loads(httpx.get(f"{live_hub}/jobs", headers=outsider).text)["jobs"] == []
    cookie = {"hub_token": outsider["Authorization"].split()[1]}
    assert httpx.get(f"{live_hub}/access/jobs/{job['id']}", cookies=cookie).status_code == 404
