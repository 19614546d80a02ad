"""Curation on good and broken series."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from common.errors import ConflictError, InputError
from site_node.curation import check_readiness, curate_site, require_ready, split_patients
from site_node.home import open_site


def _by_patient(report) -> dict:
    return {s.patient: s for s in report.series}


def test_good_series_become_nifti_pairs_and_datalist(site_home: Path, labelled_patient) -> None:
    for i in range(4):
        labelled_patient(f"P{i}", seed=i)
    report = curate_site(open_site(site_home))
    assert report.counts["included"] == 4 and report.counts["labelled"] == 4
    curated = site_home / "curated"
    datalist = json.loads((curated / "datalist.json").read_text())
    assert len(datalist["training"]) == 3 and len(datalist["validation"]) == 1
    entry = datalist["training"][0]
    image = nib.load(curated / entry["image"])
    label = nib.load(curated / entry["label"])
    assert image.shape == label.shape == (16, 16, 8)
    assert np.allclose(image.header.get_zooms(), (1.5, 1.5, 2.5))
    assert 0 < int(np.count_nonzero(label.get_fdata())) < 16 * 16 * 8
    assert float(image.get_fdata().mean()) < 100  # rescaled to HU
    assert check_readiness(curated).ready


def test_label_lands_on_the_slices_the_seg_marks(site_home: Path, export: Path, make_ct, make_seg) -> None:
    datasets = make_ct(export, "P0")
    make_seg(export, datasets)
    curate_site(open_site(site_home))
    label = nib.load(site_home / "curated" / "labels" / "0000.nii.gz").get_fdata()
    marked = sorted(set(np.nonzero(label)[2].tolist()))
    assert marked == [3, 4]
    assert np.count_nonzero(label) == 2 * 5 * 5


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"skip": 3}, "missing_slice"),
        ({"tilt_slice": 2}, "mixed_orientation"),
        ({"duplicate_position": 4}, "duplicate_slice_position"),
        ({"frames_of_reference": 2}, "mixed_frame_of_reference"),
    ],
)
def test_broken_series_are_excluded_with_the_reason(
    site_home: Path, export: Path, make_ct, kwargs, code
) -> None:
    make_ct(export, "BAD", **kwargs)
    report = curate_site(open_site(site_home))
    outcome = _by_patient(report)["BAD"]
    assert not outcome.included
    assert code in outcome.reasons
    qc = json.loads((site_home / "curated" / "qc_report.json").read_text())
    assert qc["series"][0]["reasons"] == outcome.reasons


def test_series_without_seg_is_reported_missing_label(
    site_home: Path, export: Path, make_ct, make_seg
) -> None:
    make_ct(export, "P0")
    outcome = curate_site(open_site(site_home)).series[0]
    assert outcome.reasons == ["missing_label"]


def test_seg_referencing_an_unknown_series_is_reported(
    site_home: Path, export: Path, make_ct, make_seg
) -> None:
    datasets = make_ct(export, "P0")
    make_seg(export, datasets, series_uid="2.25.1234")
    report = curate_site(open_site(site_home))
    assert [f["code"] for f in report.seg_findings] == ["seg_unknown_series"]
    assert report.series[0].reasons == ["missing_label"]


def test_duplicated_instance_is_reported_and_dropped(
    site_home: Path, labelled_patient, export: Path, make_ct, make_seg
) -> None:
    datasets = labelled_patient("P0")
    copy = export / "P0" / "copy.dcm"
    datasets[0].save_as(copy)
    outcome = curate_site(open_site(site_home)).series[0]
    assert outcome.included
    assert "duplicate_instance" in [f.code for f in outcome.findings]


def test_zero_labelled_series_fails_the_readiness_gate(
    site_home: Path, export: Path, make_ct, make_seg
) -> None:
    make_ct(export, "P0")
    curate_site(open_site(site_home))
    readiness = check_readiness(site_home / "curated")
    assert not readiness.ready
    with pytest.raises(ConflictError, match="site site-a refuses training: zero labelled"):
        require_ready(site_home / "curated", "site-a")


def test_missing_export_raises(tmp_path: Path) -> None:
    from site_node.home import init_home

    init_home(tmp_path / "h", "site-b")
    with pytest.raises(InputError):
        curate_site(open_site(tmp_path / "h"))


def test_split_is_deterministic_and_by_patient() -> None:
    patients = [f"P{i}" for i in range(10)]
    first = split_patients(patients)
    assert first == split_patients(list(reversed(patients)))
    assert len(first) == 2
    assert split_patients(["only"]) == set()


def test_withdrawn_patients_are_excluded(site_home: Path, labelled_patient) -> None:
    from sqlalchemy import insert

    from site_node.db import utcnow, withdrawal

    labelled_patient("P1", seed=1)
    labelled_patient("P2", seed=2)
    ctx = open_site(site_home)
    with ctx.engine.begin() as conn:
        conn.execute(insert(withdrawal).values(patient_pseudonym="P1", withdrawn_at=utcnow()))
    report = curate_site(ctx)
    assert _by_patient(report)["P1"].reasons == ["withdrawn"]
    assert _by_patient(report)["P2"].included
