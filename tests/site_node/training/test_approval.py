"""Job approval: digests, site.toml updates, refusals, generated NVFlare policy, site binding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.config import load_site_settings
from common.errors import ConfigError, PermissionDeniedError
from site_node.training.approval import (
    JobIdentity,
    approve_template,
    check_approved,
    identify_job,
    template_digest,
    write_manifest,
)
from site_node.training.policy import authorization_policy, privacy_policy
from site_node.training.site import SITE_MAP_ENV, resolve_site_home, write_site_map

SEG3D = Path(__file__).resolve().parents[3] / "jobs" / "seg3d"


@pytest.fixture
def template(tmp_path: Path) -> Path:
    folder = tmp_path / "tmpl"
    shutil.copytree(SEG3D, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_digest_changes_with_any_file(template: Path) -> None:
    before = template_digest(template)
    assert before == template_digest(template)
    (template / "client.py").write_text((template / "client.py").read_text() + "\n# changed\n")
    assert template_digest(template) != before


def test_approve_writes_site_toml_and_check_passes(site_home: Path, template: Path) -> None:
    digest = approve_template(site_home, "seg3d", template)
    settings = load_site_settings(site_home)
    assert settings.approved_jobs == {"seg3d": digest}
    custom = template.parent / "custom"
    shutil.copytree(template, custom)
    write_manifest(template, "seg3d", custom / "fedimaging_job.json")
    job = identify_job(custom)
    assert job == JobIdentity("seg3d", digest)
    check_approved(settings, job)
    again = approve_template(site_home, "seg3d", template)
    assert again == digest and load_site_settings(site_home).approved_jobs == {"seg3d": digest}


@pytest.mark.parametrize(
    ("approved", "message"),
    [({}, "refused by site site-a: job template seg3d is not approved"), ({"seg3d": "0" * 64}, "differs")],
)
def test_unapproved_or_changed_jobs_are_refused(site_home: Path, approved: dict, message: str) -> None:
    settings = load_site_settings(site_home, approved_jobs=approved)
    with pytest.raises(PermissionDeniedError, match=message):
        check_approved(settings, JobIdentity("seg3d", "f" * 64))


def test_job_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermissionDeniedError, match="manifest"):
        identify_job(tmp_path)


def test_generated_policy_follows_the_settings(site_home: Path) -> None:
    none = load_site_settings(site_home)
    assert authorization_policy(none)["permissions"]["lead"]["byoc"] == "none"
    some = load_site_settings(site_home, approved_jobs={"seg3d": "a" * 64})
    assert authorization_policy(some)["permissions"]["lead"]["byoc"] == "any"
    privacy = privacy_policy(some)
    assert privacy["default_scope"] == "fedimaging"
    assert privacy["scopes"][0]["task_result_filters"][0]["path"].endswith("SiteOutboundFilter")


def test_client_resolves_only_its_own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site_map = write_site_map(tmp_path / "map.json", {"site-a": tmp_path / "a", "site-b": tmp_path / "b"})
    monkeypatch.setenv(SITE_MAP_ENV, str(site_map))
    monkeypatch.setenv("SITE_NODE_HOME", str(tmp_path / "b"))  # ignored when a map is given
    assert resolve_site_home("site-a") == (tmp_path / "a").resolve()
    with pytest.raises(ConfigError):
        resolve_site_home("site-c")
    monkeypatch.delenv(SITE_MAP_ENV)
    assert resolve_site_home("anything") == tmp_path / "b"
    monkeypatch.delenv("SITE_NODE_HOME")
    with pytest.raises(ConfigError):
        resolve_site_home("site-a")
    assert json.loads(site_map.read_text())["site-b"].endswith("/b")
