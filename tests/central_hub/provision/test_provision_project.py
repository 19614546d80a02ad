"""Rendering of the NVFlare project.yml: participants, roles, ports; bad input; no process started."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from central_hub.provision.project import (
    ProvisionSpec,
    admin_email,
    load_template,
    parse_names,
    render_project,
    write_project_yml,
)
from common.errors import InputError


def _spec(**kw: object) -> ProvisionSpec:
    base: dict[str, object] = {"sites": ("site-a", "site-b", "site-c"), "researchers": ("alice",)}
    base.update(kw)
    return ProvisionSpec(**base)  # type: ignore[arg-type]


def _by_type(project: dict, kind: str) -> list[dict]:
    return [p for p in project["participants"] if p["type"] == kind]


def test_one_server_with_ports_and_host() -> None:
    project = render_project(_spec(server_host="hub.example.org", fl_port=9002, admin_port=9003))
    (server,) = _by_type(project, "server")
    assert server == {
        "name": "hub.example.org",
        "type": "server",
        "org": "hub",
        "fed_learn_port": 9002,
        "admin_port": 9003,
    }


def test_one_client_per_site_with_nvflare_safe_org() -> None:
    clients = _by_type(render_project(_spec()), "client")
    assert [c["name"] for c in clients] == ["site-a", "site-b", "site-c"]
    assert [c["org"] for c in clients] == ["site_a", "site_b", "site_c"]


def test_researchers_are_leads_and_operator_is_project_admin() -> None:
    admins = _by_type(render_project(_spec(researchers=("alice", "bob@uni.example.edu"))), "admin")
    roles = {a["name"]: a["role"] for a in admins}
    assert roles == {
        "alice@fedimaging.org": "lead",
        "bob@uni.example.edu": "lead",
        "hub-admin@fedimaging.org": "project_admin",
    }


def test_template_builders_and_project_name_kept() -> None:
    project = render_project(_spec(project_name="trial-7"))
    assert project["name"] == "trial-7"
    assert project["api_version"] == load_template()["api_version"]
    paths = [b["path"] for b in project["builders"]]
    assert paths[0].endswith("WorkspaceBuilder") and any(p.endswith("CertBuilder") for p in paths)


def test_written_file_round_trips(tmp_path: Path) -> None:
    path = write_project_yml(_spec(), tmp_path / "sub" / "project.yml")
    assert yaml.safe_load(path.read_text()) == render_project(_spec())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b, c", ("a", "b", "c")),
        (["a,b", "c"], ("a", "b", "c")),
        ("", ()),
        (None, ()),
    ],
)
def test_parse_names(value: object, expected: tuple[str, ...]) -> None:
    assert parse_names(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"sites": ()}, "sites"),
        ({"researchers": ()}, "researchers"),
        ({"sites": ("Site A",)}, "sites"),
        ({"sites": ("site-a", "site-a")}, "sites"),
        ({"sites": ("site-a", "site_a")}, "sites"),  # same NVFlare org
        ({"sites": ("localhost",)}, "sites"),
        ({"server_host": "hub_1"}, "server_host"),
        ({"fl_port": 0}, "fl_port"),
        ({"admin_port": 70000}, "admin_port"),
        ({"researchers": ("alice", "alice@fedimaging.org")}, "researchers"),
        ({"researchers": ("al ice",)}, "researchers"),
        ({"admin_domain": "nodot"}, "researchers"),
        ({"project_name": "Bad Name"}, "project_name"),
    ],
)
def test_invalid_spec_raises_and_writes_nothing(tmp_path: Path, kw: dict, field: str) -> None:
    target = tmp_path / "project.yml"
    with pytest.raises(InputError) as info:
        write_project_yml(_spec(**kw), target)
    assert info.value.field == field
    assert not target.exists()


def test_admin_email_keeps_full_addresses() -> None:
    assert admin_email("carol@lab.example.com", "fedimaging.org") == "carol@lab.example.com"
    assert admin_email("carol", "lab.example.com") == "carol@lab.example.com"


def test_provision_cli_module_is_light() -> None:
    """The hub CLI can register `provision` without loading nvflare, torch or PyYAML at start-up."""
    import subprocess
    import sys

    code = (
        "import sys, central_hub.provision.cli; "
        "print(sorted(m for m in ('nvflare', 'torch', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
