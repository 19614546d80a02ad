"""The site admin decides at the site: ``site-node requests list|approve|deny`` against a real hub server.

Each decision is recorded at both ends (site database, run audit and outbound ledger; hub audit)
and the site enforces its own record, whatever the hub says.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.errors import PermissionDeniedError

pytestmark = pytest.mark.integration
SOON = dt.date.today() + dt.timedelta(days=90)


def _site_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from tests.conftest import run_site_cli

    return run_site_cli(args, capsys)


@pytest.fixture
def filed(live_hub: str, tokens: Any, hub_settings: Any) -> int:
    """Project 'lung' (researcher-user) and one request naming site-a and site-b; returns its id."""
    from central_hub.db import session_factory
    from central_hub.projects import service

    with session_factory(hub_settings.database_url)() as session:
        service.create_project(session, "lung", "Lung study", ["site-a", "site-b"])
        service.add_member(session, "lung", "researcher-user")
        session.commit()
    body = {
        "project": "lung",
        "sites": ["site-a", "site-b"],
        "templates": ["fedquery", "seg3d"],
        "justification": "Survival of CT-detected NSCLC by site.",
        "end_date": SOON.isoformat(),
    }
    r = httpx.post(f"{live_hub}/access-requests", json=body, headers=tokens.headers("researcher"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.fixture
def site_b(tmp_path: Path) -> Path:
    from site_node.home import init_home

    init_home(tmp_path / "site-b", "site-b")
    return tmp_path / "site-b"


@pytest.mark.parametrize("hub_db_url", ["sqlite"], indirect=True)
def test_list_approve_and_deny_at_the_sites(
    live_hub: str, tokens: Any, filed: int, site_home: Path, site_b: Path, capsys: pytest.CaptureFixture
) -> None:
    from site_node.access.store import latest_decisions
    from site_node.audit import list_runs
    from site_node.home import open_site
    from site_node.outbound import list_ledger

    link_a = ["--hub", live_hub, "--token", tokens.site_a]
    code, out, err = _site_cli(["requests", "list", "--home", str(site_home), *link_a, "--json"], capsys)
    assert code == 0, err
    listed = json.loads(out)["requests"]
    assert [r["id"] for r in listed] == [filed] and listed[0]["decisions"]["site-a"]["state"] == "pending"
    code, out, _ = _site_cli(["requests", "list", "--home", str(site_home), *link_a], capsys)
    assert "pending" in out and "Survival of CT-detected NSCLC" in out

    until = (SOON - dt.timedelta(days=30)).isoformat()
    approve = ["requests", "approve", str(filed), "--templates", "fedquery", "--until", until]
    code, out, err = _site_cli([*approve, "--home", str(site_home), *link_a, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["decision"]["state"] == "approved"

    link_b = ["--hub", live_hub, "--token", tokens.site_b]
    deny = ["requests", "deny", str(filed), "--reason", "no ethics approval for survival analyses"]
    code, out, err = _site_cli([*deny, "--home", str(site_b), *link_b], capsys)
    assert code == 0, err and "denied" in out

    # the researcher sees each site's decision and reason
    view = httpx.get(f"{live_hub}/access-requests/{filed}", headers=tokens.headers("researcher")).json()
    assert view["decisions"]["site-a"]["templates"] == ["fedquery"]
    assert view["decisions"]["site-a"]["until"] == until
    assert view["decisions"]["site-b"]["reason"] == "no ethics approval for survival analyses"

    # recorded at the site: its own decision table, run audit and outbound ledger
    site = open_site(site_home)
    (row,) = latest_decisions(site.engine)
    assert (row["project"], row["submitter"], row["templates"]) == ("lung", "researcher-user", ["fedquery"])
    assert [r["status"] for r in list_runs(site.engine, "requests approve")] == ["completed"]
    kinds = [r["kind"] for r in list_ledger(site.engine)]
    assert "access_decision" in kinds and "access_request_list" in kinds

    # recorded at the hub
    audit = httpx.get(f"{live_hub}/audit", headers=tokens.headers("hub_admin")).json()
    events = audit["events"] if isinstance(audit, dict) else audit
    actions = {(e["actor"], e["action"]) for e in events}
    assert ("site:site-a", "access.approve") in actions and ("site:site-b", "access.deny") in actions


@pytest.mark.parametrize("hub_db_url", ["sqlite"], indirect=True)
def test_the_site_enforces_its_own_record(
    live_hub: str, tokens: Any, filed: int, site_home: Path, site_b: Path, capsys: pytest.CaptureFixture
) -> None:
    from common.config import load_site_settings
    from site_node.access.enforce import check_access

    link_a = ["--hub", live_hub, "--token", tokens.site_a]
    code, _, err = _site_cli(["requests", "approve", str(filed), "--home", str(site_home), *link_a], capsys)
    assert code == 0, err  # until: the request's end date
    link_b = ["--hub", live_hub, "--token", tokens.site_b]
    deny = ["requests", "deny", str(filed), "--reason", "capacity", "--home", str(site_b), *link_b]
    assert _site_cli(deny, capsys)[0] == 0

    a, b = load_site_settings(site_home), load_site_settings(site_b)
    check_access(a, "fedquery", "lung", "researcher-user")  # approved: admitted
    from site_node.training.policy import privacy_policy

    (approval,) = privacy_policy(a)["scopes"][0]["properties"]["access_approvals"]
    assert approval == {"project": "lung", "submitter": "researcher-user",
                        "templates": ["fedquery", "seg3d"], "until": SOON.isoformat()}  # fmt: skip
    assert privacy_policy(b)["scopes"][0]["properties"]["access_approvals"] == []
    with pytest.raises(PermissionDeniedError, match="refused by site site-b: .* was denied: capacity"):
        check_access(b, "fedquery", "lung", "researcher-user")
    with pytest.raises(PermissionDeniedError, match="no approved access request"):
        check_access(a, "fedquery", "lung", "mallory")  # another submitter
    with pytest.raises(PermissionDeniedError, match="no approved access request"):
        check_access(a, "fedstats", "lung", "researcher-user")  # a template not requested
    with pytest.raises(PermissionDeniedError, match=f"ended on {SOON.isoformat()}"):
        check_access(a, "fedquery", "lung", "researcher-user", today=SOON + dt.timedelta(days=1))
    with pytest.raises(PermissionDeniedError, match="names no project"):
        check_access(a, "fedquery", None, None)  # a site that decides requests admits projects only


def test_approve_and_deny_need_an_end_date_and_a_reason(
    site_home: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = _site_cli(["requests", "list", "--home", str(site_home)], capsys)
    assert code == 78 and "hub_url" in err  # no hub configured: a clear configuration error
    code, _, err = _site_cli(["requests", "deny", "1", "--home", str(site_home)], capsys)
    assert code != 0 and "--reason" in err
