"""``site-node curate`` and ``site-node job ...`` as a site admin calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from site_node.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_job_approve_list_and_policy(site_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(["job", "approve", "seg3d", "--home", str(site_home), "--json"], capsys)
    assert code == 0
    digest = json.loads(out)["digest"]
    assert json.loads(out)["policy"] == {
        "max_rounds": 20,
        "max_local_epochs": 10,
        "max_patch": 128,
        "max_batch_size": 8,
    }
    code, out, _ = _run(["job", "list", "--home", str(site_home), "--json"], capsys)
    assert json.loads(out)["approved_jobs"] == [
        {"template": "seg3d", "digest": digest, "installed_matches": True}
    ]
    code, out, _ = _run(["job", "policy", str(tmp_path / "local"), "--home", str(site_home)], capsys)
    assert code == 0 and (tmp_path / "local" / "privacy.json").exists()


def test_approving_an_unknown_template_fails(site_home: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _run(["job", "approve", "nope", "--home", str(site_home)], capsys)
    assert code == 65 and "no job template folder" in err


def test_curate_without_export_explains(site_home: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _run(["curate", "--home", str(site_home)], capsys)
    assert code == 65 and "site-node deid" in err


@pytest.mark.slow
def test_train_local_reports_device_and_dice(site_home: Path, capsys: pytest.CaptureFixture) -> None:
    from site_node.training.toy_data import write_toy_curated

    write_toy_curated(site_home, patients=4, seed=2, shape=(32, 32, 16))
    code, out, _ = _run(
        ["train-local", "--home", str(site_home), "--epochs", "1", "--device", "cpu", "--json"], capsys
    )
    result = json.loads(out)
    assert code == 0 and result["device"] == "cpu" and 0.0 <= result["val_dice"] <= 1.0


def test_train_local_refuses_an_unready_site(site_home: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _run(["train-local", "--home", str(site_home)], capsys)
    assert code == 75 and "refuses training" in err
