"""Fixtures of the DICOM de-identification tests: homes with a fixed key, planted-PHI corpora."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from common.crypto import Pseudonymizer, write_key
from site_node.home import init_home
from tests.conftest import TEST_KEY
from tests.conftest import run_site_cli as run_cli

__all__ = ["PLANTED", "TEST_KEY", "run_cli"]

#: Values planted in every corpus file; none may appear in any output byte or path.
PLANTED = {
    "PatientID": "MRN7654321",
    "PatientName": "Plantedname^Janette",
    "AccessionNumber": "ACC99887766",
    "InstitutionName": "Saint Plantedhospital",
    "ReferringPhysicianName": "Drplanted^Horace",
    "PatientBirthDate": "19500505",
    "PatientAddress": "12 Plantedstreet Road",
    "OtherPatientIDs": "OTHERID55443",
    "StudyDescription": "CT CHEST W CONTRAST follow-up for Janette Plantedname",
    "StudyID": "STUDYID3141",
    "OperatorsName": "Operatorplanted^Kim",
    "ImageComments": "Janette called on 0612345678",
}
PRIVATE_VALUE = "PrivatePlanted Janette"
#: Source files from pydicom's bundled test data (several modalities and transfer syntaxes).
SOURCES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "rtplan.dcm",
    "liver_1frame.dcm",
    "rtdose.dcm",
    "image_dfl.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
]


def make_home(path: Path, cleared: list[str] | None = None) -> Path:
    """An initialised site home whose key is the fixed test key."""
    write_key(path / "phi", TEST_KEY)  # before init: init keeps it and stores its check value
    init_home(path, "site-a")
    if cleared is not None:
        toml = path / "site.toml"
        toml.write_text(
            toml.read_text().replace("cleared_burned_in = []", f"cleared_burned_in = {json.dumps(cleared)}")
        )
    return path


def quarantine_burned_in(home: Path) -> Path:
    """Switch ``home`` to ``[deid] burned_in_text = "quarantine"`` (every at-risk instance set aside)."""
    toml = home / "site.toml"
    toml.write_text(toml.read_text().replace('burned_in_text = "redact"', 'burned_in_text = "quarantine"'))
    return home


def plant(ds: Dataset, patient_id: str = PLANTED["PatientID"], study_uid: str | None = None) -> Dataset:
    """Plant the PHI values (and a private tag) into ``ds``."""
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    ds.PatientID = patient_id
    block = ds.private_block(0x0009, "PLANTED CREATOR", create=True)
    block.add_new(0x01, "LO", PRIVATE_VALUE)
    if study_uid:
        ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20200115"
    return ds


def sample(name: str) -> Dataset:
    """One of pydicom's bundled test files, read."""
    return pydicom.dcmread(get_testdata_file(name))


@pytest.fixture
def pz() -> Pseudonymizer:
    """The pseudonymizer of the fixed test key."""
    return Pseudonymizer(TEST_KEY)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A site home with the fixed test key; burned-in classes of the test files cleared."""
    return make_home(tmp_path / "home", cleared=["NM", "OT", "1.2.840.10008.5.1.4.1.1.7"])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A nested folder of planted-PHI files with the MRN in their names, as exports come."""
    src = tmp_path / "src"
    for index, name in enumerate(SOURCES):
        ds = plant(sample(name), study_uid=f"1.2.826.0.1.3680043.9.7777.{index % 3}")
        folder = src / f"{PLANTED['PatientID']}_Plantedname" / f"study{index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"{PLANTED['PatientID']}_{index}", enforce_file_format=True)
    return src


@pytest.fixture
def write_dataset() -> Callable[[Dataset, Path], Path]:
    """Save a dataset as a Part 10 file."""

    def _write(ds: Dataset, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        return path

    return _write
