"""Inference against a real Orthanc: ``infer --pacs`` (DIMSE and DICOMweb) and a route-triggered run."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
from sqlalchemy import select

from site_node.cli import main
from tests.site_node.pacs.conftest import init_site, needs_orthanc

pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_orthanc]


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _ct_accession(studies: dict[str, list[Path]]) -> str:
    for accession, files in sorted(studies.items()):
        if any(pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT" for p in files):
            return accession
    raise AssertionError("the synthetic export holds no CT study")


def _ct_images(files: list[Path]) -> list[Path]:
    """The CT image files of a study (not its ground-truth SEG), sorted."""
    return sorted(p for p in files if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT")


def _results_in_orthanc(orthanc: Any, accession: str) -> dict[str, Any]:
    studies = [
        orthanc.get_json(f"/studies/{sid}")
        for sid in orthanc.get_json("/studies")  # type: ignore[union-attr]
    ]
    study = next(s for s in studies if s["MainDicomTags"].get("AccessionNumber") == accession)
    series = [orthanc.get_json(f"/series/{sid}") for sid in study["Series"]]
    return {s["MainDicomTags"]["Modality"]: s for s in series}


def _series_count(orthanc: Any, accession: str) -> int:
    for sid in orthanc.get_json("/studies"):  # type: ignore[union-attr]
        study = orthanc.get_json(f"/studies/{sid}")
        if study["MainDicomTags"].get("AccessionNumber") == accession:
            return len(study["Series"])
    raise AssertionError("the study is not in the PACS")


def _setup(
    tmp_path: Path, make_orthanc: Any, scp_port: int, weights: Path, capsys: Any, toml: str = ""
) -> tuple[Path, Any]:
    orthanc = make_orthanc()
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port, extra_toml=toml)
    code, _, err = _run(["model", "add", "lesions", str(weights), "--home", str(home)], capsys)
    assert code == 0, err
    return home, orthanc


@pytest.mark.parametrize("via", ["dimse", "dicomweb"])
def test_infer_by_accession_stores_seg_and_sr_into_the_study(
    tmp_path: Path, make_orthanc: Any, scp_port: int, studies: dict, weights_file: Path, capsys: Any, via: str
) -> None:
    home, orthanc = _setup(tmp_path, make_orthanc, scp_port, weights_file, capsys)
    accession = _ct_accession(studies)
    code, out, err = _run(
        [
            "infer",
            "lesions",
            "--pacs",
            "pacs1",
            "--accession",
            accession,
            "--via",
            via,
            "--home",
            str(home),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["outputs"] == ["seg", "sr"] and result["latency_s"] >= result["compute_s"] > 0
    series = _results_in_orthanc(orthanc, accession)
    assert {"CT", "SEG", "SR"} <= set(series)
    source = pydicom.dcmread(studies[accession][0], stop_before_pixels=True)
    instance = series["SEG"]["Instances"][0]
    tags = orthanc.get_json(f"/instances/{instance}/simplified-tags")
    assert tags["PatientID"] == source.PatientID and tags["AccessionNumber"] == accession  # the patient's own
    assert accession not in err and str(source.PatientID) not in out
    code, _, err = _run(
        ["infer", "lesions", "--pacs", "pacs1", "--accession", "NOPE0", "--home", str(home)], capsys
    )
    assert code == 66 and "no study with this accession" in err


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed")
def test_a_route_naming_a_model_infers_on_arrival_stores_and_notifies(
    tmp_path: Path,
    make_orthanc: Any,
    scp_port: int,
    studies: dict,
    weights_file: Path,
    webhook: Any,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from site_node.home import open_site
    from site_node.inference.route import register_model_action
    from site_node.models.tables import inference_run
    from site_node.pacs import routes as R
    from site_node.pacs.listen import Listener
    from site_node.status import site_status

    toml = (
        '\n[[routes]]\nname = "ct-lesions"\nmodality = "CT"\nmodel = "lesions"\n'
        f'\n[notify]\nurl = "{webhook.url}"\nformat = "slack"\n'
    )
    home, orthanc = _setup(tmp_path, make_orthanc, scp_port, weights_file, capsys, toml)
    site = open_site(home)
    monkeypatch.setattr(R, "_HANDLERS", dict(R._HANDLERS))  # the registration ends with this test
    register_model_action(site)
    listener = Listener(site, "SITENODE", 0, 0.5, "127.0.0.1").start()
    accession = _ct_accession(studies)
    try:
        sent = subprocess.run(  # noqa: S603
            ["storescu", "-R", "-aet", "ORTHANC", "-aec", "SITENODE", "127.0.0.1", str(listener.port)]
            + [str(p) for p in studies[accession]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        actions: list[str] = []
        deadline = time.monotonic() + 120
        while not actions and time.monotonic() < deadline:
            actions = [listener.process(k) for k in listener.complete_studies()]
            time.sleep(0.2)
    finally:
        listener.stop()
    assert actions == ["model"] and listener.counts.get("inferred") == 1
    assert not list(listener.root.iterdir())  # the spool is emptied
    assert {"SEG", "SR"} <= set(_results_in_orthanc(orthanc, accession))
    assert len(webhook.received) == 1
    text = webhook.received[0]["text"]
    source = pydicom.dcmread(studies[accession][0], stop_before_pixels=True)
    assert f"accession: {accession}" in text and "status: stored" in text
    assert str(source.PatientID) not in text and str(source.PatientName) not in text
    with site.engine.connect() as conn:
        row = conn.execute(select(inference_run)).one()
    assert row.trigger == "route" and row.latency_s >= row.compute_s > 0
    phases = row.outputs["phases_s"]
    assert {"assemble", "compute", "lesions", "seg", "sr", "store"} <= set(phases)
    assert phases["read"] < 0.5  # parsed by the listener as the instances arrived, not read back
    status = site_status(site)["inference"]
    assert status["completed"] == 1 and status["last"][0]["study"] == row.study_pseudonym


def test_a_model_run_whose_study_grew_stores_nothing_and_is_recorded_superseded(
    tmp_path: Path,
    make_orthanc: Any,
    scp_port: int,
    studies: dict,
    weights_file: Path,
    webhook: Any,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real model action, told after its compute that the study received new instances, stores no
    result in the PACS, posts no notification, records the run as superseded and lets the listener know."""
    from site_node.home import open_site
    from site_node.inference.route import register_model_action
    from site_node.models.tables import inference_run
    from site_node.pacs import routes as R
    from site_node.pacs.listen import Listener  # noqa: F401 - the listener registers the deid action

    toml = f'\n[[routes]]\nmodality = "CT"\nmodel = "lesions"\n\n[notify]\nurl = "{webhook.url}"\n'
    home, orthanc = _setup(tmp_path, make_orthanc, scp_port, weights_file, capsys, toml)
    site = open_site(home)
    monkeypatch.setattr(R, "_HANDLERS", dict(R._HANDLERS))
    register_model_action(site)
    accession = _ct_accession(studies)
    files = _ct_images(studies[accession])
    before = _series_count(orthanc, accession)
    asked: list[bool] = []

    def settled() -> bool:
        asked.append(True)
        return False

    routed = R.RoutedStudy(
        files, R.StudyFacts({"CT"}, calling_aet="ORTHANC"), site.settings.routes[0], settled=settled
    )
    with pytest.raises(R.StudyChanged):
        R.dispatch(routed)
    assert asked == [True]
    assert _series_count(orthanc, accession) == before  # no SEG or SR series reached the PACS
    assert webhook.received == []
    with site.engine.connect() as conn:
        row = conn.execute(select(inference_run)).one()
    assert row.status == "superseded" and row.trigger == "route"


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed")
def test_a_sender_releasing_after_its_first_instance_gets_one_inference_of_the_whole_study(
    tmp_path: Path,
    make_orthanc: Any,
    scp_port: int,
    studies: dict,
    weights_file: Path,
    webhook: Any,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sender that releases after one instance (some modalities open an association per image) makes
    the study complete too early: the model fails on a single slice. Within the release grace the rest
    arrives, so that failure is not reported; the whole study is inferred once, its results stored."""
    import threading

    from site_node.home import open_site
    from site_node.inference.route import register_model_action
    from site_node.models.tables import inference_run
    from site_node.pacs import routes as R
    from site_node.pacs.listen import Listener

    toml = (
        '\n[[routes]]\nmodality = "CT"\nmodel = "lesions"\n'
        f'\n[notify]\nurl = "{webhook.url}"\nformat = "json"\nfields = ["status"]\n'
    )
    home, orthanc = _setup(tmp_path, make_orthanc, scp_port, weights_file, capsys, toml)
    site = open_site(home)
    monkeypatch.setattr(R, "_HANDLERS", dict(R._HANDLERS))
    register_model_action(site)
    accession = _ct_accession(studies)
    files = _ct_images(studies[accession])
    series_before = _series_count(orthanc, accession)
    listener = Listener(site, "SITENODE", 0, 600, "127.0.0.1", release_grace=4.0).start()
    worker = threading.Thread(target=listener.run_forever, kwargs={"tick": 60}, daemon=True)
    worker.start()

    def send(batch: list[Path]) -> None:
        sent = subprocess.run(  # noqa: S603
            ["storescu", "-aet", "ORTHANC", "-aec", "SITENODE", "127.0.0.1", str(listener.port)]
            + [str(p) for p in batch],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stderr

    try:
        send(files[:1])  # released: the study is "complete" with one slice
        send(files[1:])  # the rest, well within the 4 s grace
        deadline = time.monotonic() + 120
        while listener.counts.get("inferred", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        listener.stop()
        worker.join(timeout=30)
    assert listener.counts.get("inferred") == 1, listener.counts
    assert listener.counts.get("inference_failed", 0) == 0
    assert [body["status"] for body in webhook.received] == ["stored"]  # no "failed" was posted
    assert _series_count(orthanc, accession) == series_before + 2  # one SEG and one SR
    with site.engine.connect() as conn:
        completed = conn.execute(select(inference_run).where(inference_run.c.status == "completed")).all()
    assert len(completed) == 1


def test_a_routed_run_logs_and_records_no_identifier_of_the_study(
    tmp_path: Path,
    make_orthanc: Any,
    scp_port: int,
    studies: dict,
    weights_file: Path,
    webhook: Any,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Plant-and-search: a stored run and a superseded run of the model action, logged at DEBUG; no
    patient id, name, accession number or study UID of the source appears in the logs, in the recorded
    runs (phases, notes) or on the terminal."""
    import logging

    from site_node.home import open_site
    from site_node.inference.route import register_model_action
    from site_node.models.tables import inference_run
    from site_node.pacs import routes as R

    toml = '\n[[routes]]\nmodality = "CT"\nmodel = "lesions"\n'
    home, _ = _setup(tmp_path, make_orthanc, scp_port, weights_file, capsys, toml)
    site = open_site(home)
    monkeypatch.setattr(R, "_HANDLERS", dict(R._HANDLERS))
    register_model_action(site)
    accession = _ct_accession(studies)
    files = _ct_images(studies[accession])
    source = pydicom.dcmread(files[0], stop_before_pixels=True)
    planted = [str(source.PatientID), str(source.PatientName), accession, str(source.StudyInstanceUID)]
    assert all(planted)
    facts = R.StudyFacts({"CT"}, calling_aet="ORTHANC")
    caplog.set_level(logging.DEBUG)
    assert R.dispatch(R.RoutedStudy(files, facts, site.settings.routes[0]))["inferred"] == 1
    with pytest.raises(R.StudyChanged):
        R.dispatch(R.RoutedStudy(files, facts, site.settings.routes[0], settled=lambda: False))
    with site.engine.connect() as conn:
        rows = [str(dict(row._mapping)) for row in conn.execute(select(inference_run))]
    assert len(rows) == 2
    out = capsys.readouterr()
    for text in [caplog.text, *rows, out.out, out.err]:
        for value in planted:
            assert value not in text
