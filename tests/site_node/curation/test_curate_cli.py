"""``site-node curate`` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from site_node.cli import main


def test_curate_json_reports_counts_exclusions_and_readiness(
    site_home: Path, labelled_patient, make_ct, export: Path, capsys: pytest.CaptureFixture
) -> None:
    labelled_patient("P1", seed=1)
    labelled_patient("P2", seed=2)
    make_ct(export, "P3", skip=2)
    main(["curate", "--home", str(site_home), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["included"] == 2 and out["counts"]["excluded"] == 1
    assert out["excluded"][0]["reasons"] == ["missing_slice"]
    assert out["readiness"]["ready"] is True


def test_curate_text_says_not_ready(
    site_home: Path, make_ct, export: Path, capsys: pytest.CaptureFixture
) -> None:
    make_ct(export, "P1")
    main(["curate", "--home", str(site_home)])
    out = capsys.readouterr().out
    assert "missing_label" in out and "NOT ready for training: zero labelled series" in out
