"""`site-node status` and the site admin API (`site-node serve`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from site_node.api.app import create_app
from site_node.home import open_site
from site_node.outbound import record_outbound
from tests.conftest import run_site_cli as _run

TOKEN = "x7Qp2LmN9vR4sT6wY8zA1bC3dE5fG7hJ"


def test_status_healthy(site_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["status", "--home", str(site_home), "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["healthy"] and report["key"]["ok"] and report["database"]["ok"]
    assert report["export"]["series"] == 0 and report["ledger"]["entries"] == 0


def test_status_flags_unsafe_key(site_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(site_home / "phi" / "site.key", 0o644)
    code, out, _ = _run(["status", "--home", str(site_home), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and not report["healthy"] and "group or others" in report["key"]["problem"]


def test_status_counts_ledger(site_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = open_site(site_home)
    record_outbound(site.engine, destination="http://hub", kind="cohort_summary", payload=b"{}" * 10)
    code, out, _ = _run(["status", "--home", str(site_home), "--json"], capsys)
    assert json.loads(out)["ledger"] == {"entries": 1, "bytes": 20, "pending": 0}


def test_admin_api_requires_token(site_home: Path) -> None:
    client = TestClient(create_app(open_site(site_home), TOKEN))
    for path in ("/status", "/quarantine", "/audit", "/ledger", "/jobs/approved"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_admin_api_never_serves_key(site_home: Path) -> None:
    site = open_site(site_home)
    key_hex = (site_home / "phi" / "site.key").read_bytes().hex()
    client = TestClient(create_app(site, TOKEN))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    bodies = "".join(client.get(p, headers=headers).text for p in ("/status", "/audit", "/ledger"))
    assert key_hex not in bodies
    assert client.get("/phi/site.key", headers=headers).status_code == 404
