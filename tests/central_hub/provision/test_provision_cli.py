"""`provision` as the hub CLI runs it: real `nvflare provision`, kits mapped, bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from central_hub.provision.cli import provision_command, register
from common.errors import InputError

pytest.importorskip("nvflare")


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the app into one command
        """Nothing."""

    return app


def test_provision_writes_kits_for_every_participant(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "provision",
            "--sites",
            "site-a,site-b",
            "--researchers",
            "alice",
            "--out",
            str(tmp_path / "prov"),
            "--fl-port",
            "9102",
            "--admin-port",
            "9103",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    server = Path(summary["server_kit"]["path"])
    assert server.name == "localhost" and (server / "startup" / "server.key").exists()
    fed_server = json.loads((server / "startup" / "fed_server.json").read_text())["servers"][0]
    assert fed_server["admin_port"] == 9103 and fed_server["connection_security"] == "mtls"
    for site in ("site-a", "site-b"):
        kit = Path(summary["site_kits"][site]["path"])
        client = json.loads((kit / "startup" / "fed_client.json").read_text())
        assert client["servers"][0]["service"]["target"] == "localhost:9102"
        assert client["client"]["fqsn"] == site
    alice = Path(summary["researcher_kits"]["alice@fedimaging.org"]["path"])
    admin = json.loads((alice / "startup" / "fed_admin.json").read_text())["admin"]
    assert admin["username"] == "alice@fedimaging.org" and admin["port"] == 9103
    assert Path(summary["operator_kit"]["path"]).name == "hub-admin@fedimaging.org"


def test_second_run_in_same_workspace_keeps_the_root_ca(tmp_path: Path) -> None:
    first = provision_command("site-a", "alice", tmp_path)
    second = provision_command("site-a,site-b", "alice", tmp_path)
    assert first["kit_dir"] != second["kit_dir"]
    ca = [(Path(s["server_kit"]["path"]) / "startup" / "rootCA.pem").read_bytes() for s in (first, second)]
    assert ca[0] == ca[1]


def test_bad_site_name_is_refused_before_nvflare_runs(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        provision_command("Site A", "alice", tmp_path / "prov")
    assert not (tmp_path / "prov").exists()
