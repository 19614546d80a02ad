"""``pacs pull`` against a real Orthanc: DIMSE (C-GET, C-MOVE fallback), DICOMweb, resume, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from site_node.db import ingest_journal
from site_node.home import open_site
from site_node.pacs.tables import pacs_instance, pacs_pull
from tests.site_node.pacs.conftest import REPO, init_site, needs_orthanc, site_cli

pytestmark = [needs_orthanc, pytest.mark.integration]


def _outputs(home: Path) -> list[Path]:
    return sorted((home / "export" / "dicom").rglob("*.dcm"))


def _accession_file(tmp_path: Path, numbers: list[str]) -> Path:
    path = tmp_path / "accessions.txt"
    path.write_text("# accession list\n" + "\n".join(numbers) + "\n")
    return path


def _journal_counts(home: Path) -> tuple[int, int]:
    site = open_site(home)
    with site.engine.connect() as conn:
        journal = conn.execute(select(func.count()).select_from(ingest_journal)).scalar_one()
        instances = conn.execute(select(func.count()).select_from(pacs_instance)).scalar_one()
    return journal, instances


@pytest.mark.slow
def test_dimse_pull_deidentifies_reports_unknown_and_resumes(tmp_path, make_orthanc, scp_port, studies):
    orthanc = make_orthanc(scp_port)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port)
    numbers = sorted(studies)[:3]
    expected = sum(len(studies[n]) for n in numbers)
    accessions = _accession_file(tmp_path, [*numbers, "UNKNOWN-ACC-1"])

    result = site_cli(home, "pacs", "pull", "pacs1", "--accessions", str(accessions), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["not_found"], summary["failed"]) == (3, 1, 0)
    assert summary["written"] == expected and summary["retrieval"] == {"c-get": 3}
    outputs = _outputs(home)
    assert len(outputs) == expected
    # de-identified: no accession number, patient ID or name of the source in any output or journal
    secrets = set(numbers)
    for path in studies[numbers[0]]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        secrets |= {str(ds.PatientID), str(ds.PatientName), str(ds.StudyInstanceUID)}
    for path in outputs[:20]:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in secrets)
    db_bytes = (home / "site.db").read_bytes()
    assert not any(s.encode() in db_bytes for s in secrets)
    assert "UNKNOWN-ACC-1" not in result.stdout + result.stderr

    again = json.loads(
        site_cli(home, "pacs", "pull", "pacs1", "--accessions", str(accessions), "--json").stdout
    )
    assert (again["already_done"], again["not_found"], again["written"]) == (3, 1, 0)
    assert len(_outputs(home)) == expected
    assert _journal_counts(home) == (expected, expected)


@pytest.mark.slow
def test_dicomweb_pull_matches_dimse_output(tmp_path, make_orthanc, scp_port, studies):
    orthanc = make_orthanc(scp_port)
    numbers = sorted(studies)[:2]
    accessions = _accession_file(tmp_path, numbers)
    outputs = {}
    for via in ("dimse", "dicomweb"):
        home = tmp_path / via
        init_site(home, orthanc, scp_port, key=bytes(range(32)))  # same key: same pseudonyms and paths
        result = site_cli(
            home, "pacs", "pull", "pacs1", "--accessions", str(accessions), "--via", via, "--json"
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["done"] == 2
        outputs[via] = {p.relative_to(home): p.read_bytes() for p in _outputs(home)}
    dimse = {str(k).split("/", 1)[1]: v for k, v in outputs["dimse"].items()}
    web = {str(k).split("/", 1)[1]: v for k, v in outputs["dicomweb"].items()}
    assert dimse.keys() == web.keys() and len(dimse) == sum(len(studies[n]) for n in numbers)
    assert dimse == web


@pytest.mark.slow
def test_cmove_fallback_when_cget_refused(tmp_path, make_orthanc, scp_port, studies):
    orthanc = make_orthanc(scp_port, allow_get=False, allow_unknown=False)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port)
    number = sorted(studies)[0]
    result = site_cli(
        home, "pacs", "pull", "pacs1", "--accessions", str(_accession_file(tmp_path, [number])), "--json"
    )
    summary = json.loads(result.stdout)
    assert summary["done"] == 1 and summary["retrieval"] == {"c-move": 1}, result.stderr
    assert len(_outputs(home)) == len(studies[number])


@pytest.mark.slow
def test_rejected_association_is_reported_per_accession(tmp_path, make_orthanc, scp_port, studies):
    orthanc = make_orthanc(scp_port, load=False, check_called_aet=True)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port, aet="WRONGAET")
    numbers = sorted(studies)[:2]
    result = site_cli(home, "pacs", "pull", "pacs1", "--accessions", str(_accession_file(tmp_path, numbers)))
    assert result.returncode == 0, result.stderr
    assert "failed: 2" in result.stdout
    assert "rejected the association" in result.stdout
    assert "Traceback" not in result.stderr and not any(n in result.stdout for n in numbers)
    echo = site_cli(home, "pacs", "echo", "pacs1")
    assert echo.returncode == 69 and "rejected" in echo.stdout


def test_pacs_down_is_retried_then_reported(tmp_path, make_orthanc, scp_port, studies):
    orthanc = make_orthanc(scp_port, load=False)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port)
    orthanc.stop()
    result = site_cli(
        home, "pacs", "pull", "pacs1", "--accessions", str(_accession_file(tmp_path, ["A1"])), "--json"
    )
    summary = json.loads(result.stdout)
    assert result.returncode == 0
    assert summary["failed"] == 1 and "could not be reached" in summary["failures"][0]["reason"]


@pytest.mark.slow
def test_kill_9_midway_then_rerun_loses_and_duplicates_nothing(tmp_path, make_orthanc, scp_port, studies):
    orthanc = make_orthanc(scp_port)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port)
    numbers = sorted(studies)
    expected = sum(len(studies[n]) for n in numbers)
    accessions = _accession_file(tmp_path, numbers)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITE_NODE_")}
    env.update(SITE_NODE_HOME=str(home), PYTHONPATH=str(REPO))
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            "from site_node.cli import main; main()",
            "pacs",
            "pull",
            "pacs1",
            "--accessions",
            str(accessions),
            "--max-images-per-s",
            "40",
            "--workers",
            "1",
            "--json",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_outputs(home)) < expected // 3:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(_outputs(home))
    assert 0 < partial < expected
    result = site_cli(home, "pacs", "pull", "pacs1", "--accessions", str(accessions), "--json")
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0 and summary["done"] + summary["already_done"] == len(numbers)
    quarantined = sorted((home / "quarantine" / "dicom").glob("*.bin"))
    assert len(_outputs(home)) + len(quarantined) == expected, summary
    assert not list((home / "export").rglob(".partial-*"))
    assert _journal_counts(home) == (expected, expected)
    site = open_site(home)
    with site.engine.connect() as conn:
        statuses = [r[0] for r in conn.execute(select(pacs_pull.c.status))]
    assert statuses == ["done"] * len(numbers)


@pytest.mark.slow
def test_pacs_going_away_mid_study_then_resume(tmp_path, make_orthanc, scp_port, studies):
    orthanc = make_orthanc(scp_port)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port)
    number = max(studies, key=lambda n: len(studies[n]))
    accessions = _accession_file(tmp_path, [number])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITE_NODE_")}
    env.update(SITE_NODE_HOME=str(home), PYTHONPATH=str(REPO))
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            "from site_node.cli import main; main()",
            "pacs",
            "pull",
            "pacs1",
            "--accessions",
            str(accessions),
            "--max-images-per-s",
            "10",
            "--json",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_outputs(home)) < 3:
        time.sleep(0.05)
    orthanc.kill()  # the PACS goes away mid-study
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["failed"] == 1 and summary["failures"][0]["reason"], summary
    assert 0 < len(_outputs(home)) < len(studies[number])
    orthanc.start()  # back, same storage, new ports
    open_site(home)
    from site_node.pacs.nodes import PacsNode, add_node, remove_node

    site = open_site(home)
    remove_node(site.engine, "pacs1")
    add_node(site.engine, PacsNode("pacs1", "ORTHANC", "127.0.0.1", orthanc.dicom_port, orthanc.dicomweb_url))
    summary = json.loads(
        site_cli(home, "pacs", "pull", "pacs1", "--accessions", str(accessions), "--json").stdout
    )
    assert summary["done"] == 1 and summary["failed"] == 0
    assert len(_outputs(home)) == len(studies[number])
    assert _journal_counts(home) == (len(studies[number]),) * 2


@pytest.mark.slow
@pytest.mark.parametrize("via", ["dimse", "dicomweb"])
def test_whole_study_retrieval_when_instances_cannot_be_listed(
    tmp_path, make_orthanc, scp_port, studies, via
):
    """A PACS without IMAGE-level C-FIND: the study is retrieved whole (common storage classes)."""
    from site_node.deid.engine import DeidContext
    from site_node.ingest import ingest_run
    from site_node.pacs.nodes import get_node
    from site_node.pacs.pull import Puller
    from site_node.pacs.sink import InstanceSink

    orthanc = make_orthanc(scp_port)
    home = tmp_path / "home"
    init_site(home, orthanc, scp_port)
    site = open_site(home)
    pz = site.pseudonymizer()
    number = sorted(studies)[0]
    with ingest_run(site, "dicom", "pacs-pull") as run:
        out = site.settings.export_dir / "dicom"
        sink = InstanceSink(run, site.engine, pz, DeidContext(pz, site.settings.deid), out, None)
        puller = Puller(
            get_node(site.engine, "pacs1"), sink, "SITENODE", ("127.0.0.1", scp_port), via, 10.0, 0
        )
        (study_uid,) = puller.find_studies(number)
        puller.retrieve(study_uid, {"": []})
        puller.close()
    assert sink.tally["written"] + sink.tally["quarantined"] == len(studies[number])
