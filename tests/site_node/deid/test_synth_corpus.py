"""The synthetic hospitals' planted PHI (truth.json) never reaches an output byte or path."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import tag_for_keyword

from common.config import DeidOptions
from site_node.deid import profile as P
from tests.site_node.deid.conftest import make_home, run_cli

synthetic = pytest.importorskip("site_node.synthetic")

#: Kept on purpose by the default options: whole-day shifts keep the time of day (Retain
#: Longitudinal Temporal Information with Modified Dates), Retain Device Identity keeps station names.
_RETAINED_ACTIONS = {P.KEEP, P.SHIFT, P.RECURSE}


def retained_by_profile(entry: dict, options: DeidOptions | None = None) -> bool:
    """True when a planted value sits in an attribute the configured profile keeps by design."""
    actions = P.build_plan(options or DeidOptions()).actions
    for location in entry["locations"]:
        if not location["file"].startswith("dicom/"):
            continue
        tag = tag_for_keyword(location["field"])
        if tag is None:
            continue
        action = actions.get(tag, P.REMOVE)
        if action in _RETAINED_ACTIONS and not entry["kind"].endswith("date"):
            return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("style", ["b", "c"])
def test_synthetic_site_has_no_planted_phi_in_outputs(tmp_path: Path, style: str, capsys) -> None:  # type: ignore[no-untyped-def]
    site_dir = tmp_path / "synth"
    synthetic.generate_site(site_dir, patients=3, seed=11, style=style)
    truth = json.loads((site_dir / "truth.json").read_text())
    dicom_phi = [p for p in truth["phi"] if any(loc["file"].startswith("dicom/") for loc in p["locations"])]
    needles = [str(p["value"]) for p in dicom_phi if not retained_by_profile(p) and len(str(p["value"])) >= 4]
    assert len(needles) >= 20
    home = make_home(tmp_path / "home")
    args = ["deid", str(site_dir / "dicom"), "--home", str(home), "--json", "--workers", "2"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["written"] > 0
    assert set(summary["quarantined"]) <= {"burned_in_risk"}
    export = home / "export" / "dicom"
    for path in export.rglob("*"):
        rel = str(path.relative_to(export))
        assert not [n for n in needles if n in rel]
        if path.is_file():
            data = path.read_bytes()
            leaked = [n for n in needles if n.encode() in data]
            assert not leaked, (rel, leaked)
    # every instance carries the patient pseudonym; SEGs still point at their CT series
    instances = [pydicom.dcmread(p, stop_before_pixels=True) for p in export.rglob("*.dcm")]
    series = {ds.SeriesInstanceUID for ds in instances}
    for ds in instances:
        assert ds.PatientID == Path(*[]).joinpath(ds.PatientID).name and ds.PatientID.startswith("P")
        if ds.Modality == "SEG":
            assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID in series
