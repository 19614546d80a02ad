"""Small synthetic CT series and DICOM-SEG objects built in fixtures (pydicom + highdicom)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from site_node.home import init_home

SIZE = 16


def ct_series(
    out: Path,
    patient: str,
    n_slices: int = 8,
    *,
    skip: int | None = None,
    tilt_slice: int | None = None,
    duplicate_position: int | None = None,
    frames_of_reference: int = 1,
    seed: int = 0,
) -> list[FileDataset]:
    """Write one CT series (``n_slices`` 16x16 slices) and return its datasets."""
    rng = np.random.default_rng(seed)
    study, series = generate_uid(), generate_uid()
    frames = [generate_uid() for _ in range(frames_of_reference)]
    datasets = []
    folder = out / patient / series
    folder.mkdir(parents=True)
    for k in range(n_slices):
        if k == skip:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.PatientName, ds.PatientSex, ds.PatientBirthDate = patient, patient + "^", "F", ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frames[k % frames_of_reference]
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.StudyDate = ds.SeriesDate = "20200101"
        ds.StudyTime = "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName, ds.Manufacturer = "1", "", "", "synthetic"
        ds.PositionReferenceIndicator = ""
        z = float(k if duplicate_position is None or k != duplicate_position else k - 1) * 2.5
        ds.ImagePositionPatient = [-20.0, -20.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.436] if k == tilt_slice else [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1.5, 1.5]
        ds.SliceThickness = 2.5
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
        ds.PixelData = rng.integers(900, 1100, (SIZE, SIZE), dtype=np.int16).tobytes()
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
        datasets.append(pydicom.dcmread(folder / f"{k}.dcm"))
    return datasets


def seg_for(out: Path, source: list[FileDataset], *, series_uid: str | None = None) -> Path:
    """Write a DICOM-SEG with a small cube lesion over the middle slices of ``source``."""
    mask = np.zeros((len(source), SIZE, SIZE), dtype=bool)
    mid = len(source) // 2
    mask[max(0, mid - 1) : mid + 1, 5:10, 6:11] = True
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=hd.sr.CodedConcept(
            "49755003", "SCT", "Morphologically Altered Structure"
        ),
        segmented_property_type=hd.sr.CodedConcept("52988006", "SCT", "Lesion"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=generate_uid(),
        series_number=100,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="synthetic",
        manufacturer_model_name="fixture",
        software_versions="1",
        device_serial_number="1",
    )
    if series_uid is not None:
        seg.ReferencedSeriesSequence[0].SeriesInstanceUID = series_uid
        for item in seg.PerFrameFunctionalGroupsSequence:
            del item.DerivationImageSequence
    path = out / str(source[0].PatientID) / "seg" / f"{seg.SOPInstanceUID}.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


@pytest.fixture
def site_home(tmp_path: Path) -> Path:
    """An initialised site home with an empty export/dicom folder."""
    home = tmp_path / "home"
    init_home(home, "site-a")
    (home / "export" / "dicom").mkdir(parents=True)
    return home


@pytest.fixture
def export(site_home: Path) -> Path:
    """The site's DICOM export folder."""
    return site_home / "export" / "dicom"


@pytest.fixture
def make_ct() -> Callable[..., list[FileDataset]]:
    """The CT series builder."""
    return ct_series


@pytest.fixture
def make_seg() -> Callable[..., Path]:
    """The SEG builder."""
    return seg_for


@pytest.fixture
def labelled_patient(export: Path) -> Callable[..., list[FileDataset]]:
    """Factory: a labelled CT series for ``patient``."""

    def make(patient: str, **kwargs: object) -> list[FileDataset]:
        datasets = ct_series(export, patient, **kwargs)  # type: ignore[arg-type]
        seg_for(export, datasets)
        return datasets

    return make
