"""``site-node model pull`` from a real hub server: digest verified, inbound run recorded, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from site_node.cli import main

pytestmark = pytest.mark.integration


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def published(hub_settings: Any, weights_file: Path) -> Path:
    """seg3d version 1 in the hub's registry (as a finished job publishes it); returns its file."""
    from central_hub.db import session_factory
    from central_hub.models.models import HubModel
    from central_hub.models.service import MODEL_FILE, model_dir
    from common.digest import file_sha256

    folder = model_dir(hub_settings, "seg3d", 1)
    folder.mkdir(parents=True)
    target = folder / MODEL_FILE
    target.write_bytes(weights_file.read_bytes())
    with session_factory(hub_settings.database_url)() as session:
        session.add(
            HubModel(
                name="seg3d",
                version=1,
                template="seg3d",
                template_digest="d" * 64,
                job_id="job1",
                training_sites=["site-a", "site-b"],
                rounds=3,
                site_metrics={"site-a": {"val_dice": 0.71}},
                dataset_versions={"site-a": "sha256:" + "0" * 64},
                model_args={"channels": [8, 16, 32], "patch": [32, 32, 16]},
                sha256=file_sha256(target),
                size_bytes=target.stat().st_size,
            )
        )
        session.commit()
    return target


def test_pull_verifies_the_digest_and_records_an_inbound_run(
    site_home: Path,
    live_hub: str,
    tokens: Any,
    published: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    from site_node.audit import list_runs
    from site_node.home import open_site

    args = ["--hub", live_hub, "--token", tokens.site_a, "--home", str(site_home)]
    code, out, err = _run(["model", "pull", "seg3d", *args, "--json"], capsys)
    assert code == 0, err
    pulled = json.loads(out)
    assert (pulled["name"], pulled["version"], pulled["source"]) == ("seg3d", 1, "hub")
    assert pulled["dataset_versions"] == {"site-a": "sha256:" + "0" * 64}
    assert (site_home / "models" / "seg3d" / "1" / "model.pt").read_bytes() == published.read_bytes()
    runs = list_runs(open_site(site_home).engine, "model-pull")
    assert runs[0]["status"] == "completed" and runs[0]["counts"]["direction"] == "inbound"
    # pulling the same version again is a no-op; an unknown model is 66
    assert _run(["model", "pull", "seg3d:1", *args], capsys)[0] == 0
    code, _, err = _run(["model", "pull", "nope", *args], capsys)
    assert code == 66 and "no such model" in err


def test_a_file_that_differs_from_its_card_is_refused(
    site_home: Path,
    live_hub: str,
    tokens: Any,
    published: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    from site_node.audit import list_runs
    from site_node.home import open_site

    data = bytearray(published.read_bytes())
    data[len(data) // 2] ^= 0xFF
    published.write_bytes(bytes(data))  # the hub now serves bytes its card does not describe
    code, _, err = _run(
        ["model", "pull", "seg3d", "--hub", live_hub, "--token", tokens.site_a, "--home", str(site_home)],
        capsys,
    )
    assert code == 77 and "does not match the SHA-256" in err
    assert _run(["model", "list", "--home", str(site_home), "--json"], capsys)[1].strip() == '{"models": []}'
    assert list_runs(open_site(site_home).engine, "model-pull")[0]["status"] == "failed"
    code, _, err = _run(
        ["model", "pull", "seg3d", "--hub", live_hub, "--token", tokens.searcher, "--home", str(site_home)],
        capsys,
    )
    assert code == 77 and "refused the site's token" in err
