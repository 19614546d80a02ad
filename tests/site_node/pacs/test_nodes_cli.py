"""``pacs add / list / remove / echo / find`` through the CLI; secrets never taken as arguments."""

from __future__ import annotations

import json

import pytest

from site_node.home import init_home
from site_node.pacs.nodes import PacsNode, read_secret
from site_node.pacs.web import session_for
from tests.site_node.pacs.conftest import init_site, needs_orthanc, site_cli


@pytest.mark.slow
def test_add_list_remove_with_secret_locations_only(tmp_path, monkeypatch):
    home = tmp_path / "home"
    init_home(home, "site-a")
    token = tmp_path / "token"
    token.write_text("s3cr3t-token-value-not-in-db")
    token.chmod(0o600)
    added = site_cli(
        home,
        "pacs",
        "add",
        "main",
        "--aet",
        "MAINPACS",
        "--host",
        "10.0.0.5",
        "--port",
        "104",
        "--dicomweb",
        "https://pacs.example/dicom-web",
        "--auth",
        "bearer",
        "--token-file",
        str(token),
        "--json",
    )
    assert added.returncode == 0, added.stderr
    listed = json.loads(site_cli(home, "pacs", "list", "--json").stdout)
    assert listed["nodes"][0]["auth"] == {"kind": "bearer", "token_file": str(token)}
    assert b"s3cr3t-token" not in (home / "site.db").read_bytes()
    assert site_cli(home, "pacs", "add", "main", "--aet", "X", "--host", "h", "--port", "1").returncode == 75
    bad = site_cli(home, "pacs", "add", "other", "--aet", "BAD\\AET", "--host", "h", "--port", "1")
    assert bad.returncode == 65 and "AE title" in bad.stderr
    no_secret = site_cli(
        home, "pacs", "add", "b", "--aet", "B", "--host", "h", "--port", "1", "--auth", "basic"
    )
    assert no_secret.returncode == 65 and "--password-env" in no_secret.stderr
    assert site_cli(home, "pacs", "remove", "main").returncode == 0
    assert json.loads(site_cli(home, "pacs", "list", "--json").stdout)["nodes"] == []
    assert site_cli(home, "pacs", "remove", "main").returncode == 66


def test_secrets_come_from_env_or_private_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PACS_PW", "pw-from-env")
    node = PacsNode(
        "n", "A", "h", 1, "https://x", {"kind": "basic", "username": "u", "password_env": "PACS_PW"}
    )
    assert session_for(node, 5).auth == ("u", "pw-from-env")
    loose = tmp_path / "loose"
    loose.write_text("token")
    loose.chmod(0o644)
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="readable by others"):
        read_secret({"token_file": str(loose)}, "token_env", "token_file", "token")
    monkeypatch.delenv("PACS_PW")
    with pytest.raises(ConfigError, match="not set"):
        session_for(node, 5)
    cert = PacsNode(
        "n", "A", "h", 1, "https://x", {"kind": "cert", "cert_file": "/c.pem", "key_file": "/k.pem"}
    )
    assert session_for(cert, 5).cert == ("/c.pem", "/k.pem")


@needs_orthanc
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("via", ["dimse", "dicomweb"])
def test_echo_and_find_print_identifiers_to_stdout_only(tmp_path, make_orthanc, scp_port, studies, via):
    orthanc = make_orthanc(scp_port)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port)
    echo = site_cli(home, "pacs", "echo", "pacs1", "--json")
    assert json.loads(echo.stdout) == {"node": "pacs1", "dimse": "ok", "dicomweb": "ok", "ok": True}
    number = sorted(studies)[0]
    found = site_cli(home, "pacs", "find", "pacs1", "--accession", number, "--via", via, "--json")
    rows = json.loads(found.stdout)["studies"]
    assert [r["AccessionNumber"] for r in rows] == [number]
    assert number not in found.stderr
    ct = json.loads(
        site_cli(home, "pacs", "find", "pacs1", "--modality", "CT", "--via", via, "--json").stdout
    )
    assert ct["studies"] and all("CT" in r["ModalitiesInStudy"] for r in ct["studies"])
    bad = site_cli(home, "pacs", "find", "pacs1", "--since", "2024-13-01")
    assert bad.returncode == 65
