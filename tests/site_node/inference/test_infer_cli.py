"""``site-node model add|list`` and ``site-node infer --input/--out``: valid SEG + SR, refusals."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from site_node.cli import main
from tests.site_node.inference.conftest import dciodvfy_errors


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _add(site_home: Path, weights: Path, capsys: pytest.CaptureFixture) -> dict:
    code, out, err = _run(
        ["model", "add", "lesions", str(weights), "--template", "seg3d", "--home", str(site_home), "--json"],
        capsys,
    )
    assert code == 0, err
    return json.loads(out)


def test_model_add_and_list(site_home: Path, weights_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from common.digest import file_sha256

    first = _add(site_home, weights_file, capsys)
    assert (first["name"], first["version"], first["source"]) == ("lesions", 1, "file")
    assert first["sha256"] == file_sha256(weights_file) and first["template"] == "seg3d"
    assert _add(site_home, weights_file, capsys)["version"] == 2
    code, out, _ = _run(["model", "list", "--home", str(site_home), "--json"], capsys)
    assert [(m["name"], m["version"]) for m in json.loads(out)["models"]] == [("lesions", 2), ("lesions", 1)]
    code, out, _ = _run(["model", "list", "--home", str(site_home)], capsys)
    assert "lesions:2" in out and "file" in out

    not_weights = tmp_path / "notes.pt"
    not_weights.write_text("not a checkpoint")
    code, _, err = _run(["model", "add", "other", str(not_weights), "--home", str(site_home)], capsys)
    assert code == 65 and "not a PyTorch checkpoint" in err
    code, _, err = _run(
        ["model", "add", "other", str(weights_file), "--channels", "4,8", "--home", str(site_home)], capsys
    )
    assert code == 65 and "do not fit" in err
    code, _, err = _run(
        ["model", "add", "other", str(weights_file), "--template", "fedstats", "--home", str(site_home)],
        capsys,
    )
    assert code == 65 and "unknown template" in err


def test_infer_refuses_an_unknown_model_or_a_changed_file(
    site_home: Path, weights_file: Path, study_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    out_dir = tmp_path / "results"
    args = ["--input", str(study_dir), "--out", str(out_dir), "--home", str(site_home)]
    code, _, err = _run(["infer", "nope", *args], capsys)
    assert code == 66 and "unknown model" in err
    stored = _add(site_home, weights_file, capsys)
    weights = site_home / "models" / "lesions" / str(stored["version"]) / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    code, _, err = _run(["infer", "lesions", *args], capsys)
    assert code == 77 and "no longer matches" in err, err
    assert not out_dir.exists()


def test_infer_writes_seg_sr_and_overlay_that_validate(
    site_home: Path, weights_file: Path, study_dir: Path, tmp_path: Path, capsys, caplog
) -> None:  # type: ignore[no-untyped-def]
    from site_node.db import get_engine
    from site_node.home import open_site
    from site_node.models.tables import inference_run

    _add(site_home, weights_file, capsys)
    out_dir = tmp_path / "results"
    caplog.set_level(logging.INFO)
    code, out, err = _run(
        ["infer", "lesions:1", "--input", str(study_dir), "--out", str(out_dir), "--overlay"]
        + ["--device", "cpu", "--home", str(site_home), "--json"],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["outputs"] == ["seg", "sr", "overlay"] and result["device"] == "cpu"
    assert 0 < result["compute_s"] <= result["latency_s"]
    files = {Path(p).name.rsplit("_", 1)[1]: Path(p) for p in result["files"]}
    source = [pydicom.dcmread(p) for p in sorted((study_dir).glob("*_CT/*"))]
    source_uids = {str(ds.SOPInstanceUID) for ds in source}
    seg = pydicom.dcmread(files["seg.dcm"])
    sr = pydicom.dcmread(files["sr.dcm"])
    for ds in (seg, sr):
        assert ds.PatientID == source[0].PatientID and ds.StudyInstanceUID == source[0].StudyInstanceUID
        assert ds.AccessionNumber == source[0].AccessionNumber
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source[0].SeriesInstanceUID
    referenced = {
        str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced <= source_uids and referenced
    segment = seg.SegmentSequence[0]
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # SNOMED CT Lesion
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    algo = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert (algo.AlgorithmName, algo.AlgorithmVersion) == ("lesions", "1")
    evidence = {
        str(i.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for i in series.ReferencedSOPSequence
    }
    assert str(seg.SOPInstanceUID) in evidence and source_uids <= evidence
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    for kind in ("seg.dcm", "sr.dcm"):
        assert dciodvfy_errors(files[kind]) == []
    assert pydicom.dcmread(files["overlay.dcm"]).Modality == "OT"
    # the run is recorded under the study's pseudonym; no identifier reaches the logs
    ctx = open_site(site_home)
    with get_engine(ctx.settings.database_url).connect() as conn:
        row = conn.execute(select(inference_run)).one()
    assert row.study_pseudonym == result["study"] and row.study_pseudonym.startswith("S")
    assert row.status == "completed" and row.latency_s > 0 and row.trigger == "folder"
    logged = caplog.text
    for identifier in (source[0].PatientID, source[0].StudyInstanceUID, source[0].AccessionNumber):
        assert str(identifier) not in logged and str(identifier) not in out


def test_dciodvfy_reports_a_broken_seg(
    site_home: Path, weights_file: Path, study_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """The validator check can fail: a SEG without its Segment Sequence is reported."""
    _add(site_home, weights_file, capsys)
    out_dir = tmp_path / "results"
    _run(
        ["infer", "lesions", "--input", str(study_dir), "--out", str(out_dir), "--home", str(site_home)],
        capsys,
    )
    seg_path = next(out_dir.glob("*_seg.dcm"))
    broken = pydicom.dcmread(seg_path)
    del broken.SegmentSequence
    broken.save_as(tmp_path / "broken.dcm")
    assert dciodvfy_errors(tmp_path / "broken.dcm")


def test_infer_refuses_a_folder_without_a_ct_study(
    site_home: Path, weights_file: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    _add(site_home, weights_file, capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(
        ["infer", "lesions", "--input", str(empty), "--out", str(tmp_path / "o"), "--home", str(site_home)],
        capsys,
    )
    assert code == 65 and "no DICOM file" in err


def test_evaluate_scores_the_curated_set_locally(site_home: Path, weights_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from site_node.training.toy_data import write_toy_curated

    write_toy_curated(site_home, patients=4, seed=5, shape=(24, 24, 16))
    _add(site_home, weights_file, capsys)
    code, out, err = _run(
        ["evaluate", "lesions", "--device", "cpu", "--home", str(site_home), "--json"], capsys
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["n_cases"] == 4 and 0.0 <= result["dice"] <= 1.0 and result["releasable"] is False
    assert result["dataset_version"].startswith("sha256:") and result["model"] == "lesions:1"
    code, _, err = _run(["evaluate", "nope", "--home", str(site_home)], capsys)
    assert code == 66


@pytest.mark.slow
def test_train_local_save_keeps_the_model(site_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from site_node.training.toy_data import write_toy_curated

    write_toy_curated(site_home, patients=4, seed=2, shape=(32, 32, 16))
    argv = [
        "train-local",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--save",
        "mine",
        "--home",
        str(site_home),
        "--json",
    ]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert json.loads(out)["saved"] == "mine:1"
    code, out, _ = _run(["model", "list", "--home", str(site_home), "--json"], capsys)
    (model,) = json.loads(out)["models"]
    assert model["source"] == "local" and "val_dice" in model["metrics"]
    assert model["dataset_versions"]["site-a"].startswith("sha256:")
    code, _, err = _run(["train-local", "--save", "Bad Name", "--home", str(site_home)], capsys)
    assert code == 65
