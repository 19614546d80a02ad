"""What research needs survives de-identification: a Siemens mosaic and an enhanced MR convert with
dcm2niix as the originals do; enhanced MR functional groups keep timing, echo and diffusion while the
identifiers inside them still go; a diffusion series keeps its b-values and vectors."""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from site_node.deid import DeidContext, deidentify_dataset, run_deid
from site_node.deid.private import unsafe_private_tags
from site_node.home import open_site
from tests.site_node.deid.conftest import PLANTED, make_home, plant, sample

FIXTURES = Path(__file__).parents[2] / "data" / "dicom_qa"
DCM2NIIX = shutil.which("dcm2niix")
needs_dcm2niix = pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix (Debian package) not installed")
NAME = "Plantedname"


def _fixture(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(io.BytesIO(gzip.decompress((FIXTURES / f"{name}.dcm.gz").read_bytes())))
    plant(ds)
    if ds.get((0x0019, 0x0010)):
        ds.add_new(0x0019100F, "SH", NAME)  # a listed creator, an unlisted element
    path = folder / f"{PLANTED['PatientID']}.dcm"
    ds.save_as(path)
    return path


def _nifti(folder: Path, out: Path) -> dict[str, object]:
    out.mkdir(parents=True)
    subprocess.run(  # noqa: S603 - the Debian tool on our temporary folders
        [DCM2NIIX or "dcm2niix", "-z", "n", "-b", "n", "-f", "img", "-o", str(out), str(folder)],
        check=True,
        capture_output=True,
    )
    (nii,) = out.glob("*.nii")
    data = nii.read_bytes()
    offset = int(struct.unpack_from("<f", data, 108)[0])
    result: dict[str, object] = {
        "dim": struct.unpack_from("<8h", data, 40),
        "pixdim": np.round(struct.unpack_from("<8f", data, 76), 4).tolist(),
        "srow": np.round(struct.unpack_from("<12f", data, 280), 3).tolist(),
        "voxels": data[offset:],
    }
    for side in (".bval", ".bvec"):
        if nii.with_suffix(side).exists():
            result[side] = nii.with_suffix(side).read_text().split()
    return result


def _run(tmp_path: Path, src: Path) -> Path:
    home = make_home(tmp_path / "home")
    out = tmp_path / "out"
    summary = run_deid(open_site(home), src, out)
    assert summary.quarantined_total == 0
    return out


@needs_dcm2niix
def test_siemens_mosaic_keeps_slice_count_and_geometry(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _fixture("siemens_mosaic_axasc35", src)
    out = _run(tmp_path, src)
    (written,) = out.rglob("*.dcm")
    ds = pydicom.dcmread(written)
    header = ds.private_block(0x0019, "SIEMENS MR HEADER")
    assert header[0x0A].value == 35  # NumberOfImagesInMosaic
    assert len(header[0x29].value) == 35  # MosaicRefAcqTimes: slice timing
    assert 0x0F not in header  # an unlisted element of the same creator
    assert (0x0029, 0x1020) not in ds  # the CSA series header (protocol text) is gone
    assert unsafe_private_tags(ds) == []
    assert NAME.encode() not in written.read_bytes()
    original, deidentified = _nifti(src, tmp_path / "n1"), _nifti(out, tmp_path / "n2")
    assert original["dim"][:4] == (3, 64, 64, 35)
    assert deidentified == original


@needs_dcm2niix
def test_enhanced_mr_converts_as_the_original(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _fixture("siemens_xa10_enhanced_mr", src)
    out = _run(tmp_path, src)
    (written,) = out.rglob("*.dcm")
    ds = pydicom.dcmread(written)
    timing = ds.SharedFunctionalGroupsSequence[0].MRTimingAndRelatedParametersSequence[0]
    assert float(timing.RepetitionTime) == 500 and float(timing.FlipAngle) == 52
    assert _nifti(out, tmp_path / "n2") == _nifti(src, tmp_path / "n1")


def _frame(index: int, bvalue: float, direction: list[float]) -> Dataset:
    content = Dataset()
    content.DimensionIndexValues = [1, index + 1]
    content.FrameAcquisitionDateTime = "20200115101500"
    content.FrameComments = f"frame of {NAME}"  # X (C under Clean Descriptors) in Table E.1-1
    position = Dataset()
    position.ImagePositionPatient = [-100.0, -100.0, float(index * 5)]
    diffusion = Dataset()
    diffusion.DiffusionBValue = bvalue
    diffusion.DiffusionDirectionality = "DIRECTIONAL"
    gradient = Dataset()
    gradient.DiffusionGradientOrientation = direction
    diffusion.DiffusionGradientDirectionSequence = Sequence([gradient])
    echo = Dataset()
    echo.EffectiveEchoTime = 85.0
    derivation = Dataset()
    source = Dataset()
    source.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    source.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.9.7777.5.{index}"
    derivation.SourceImageSequence = Sequence([source])
    derivation.DerivationDescription = f"by {NAME}"  # X in Table E.1-1
    frame = Dataset()
    frame.FrameContentSequence = Sequence([content])
    frame.PlanePositionSequence = Sequence([position])
    frame.MRDiffusionSequence = Sequence([diffusion])
    frame.MREchoSequence = Sequence([echo])
    frame.DerivationImageSequence = Sequence([derivation])
    return frame


def _enhanced_dwi() -> Dataset:
    ds = plant(sample("MR_small.dcm"))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    timing = Dataset()
    timing.RepetitionTime = 4200.0
    timing.FlipAngle = 90.0
    timing.EchoTrainLength = 64
    measures = Dataset()
    measures.PixelSpacing = [2.0, 2.0]
    measures.SliceThickness = 5.0
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared = Dataset()
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    directions = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [_frame(i, 1000.0 if i else 0.0, directions[i]) for i in range(3)]
    )
    index = Dataset()
    index.DimensionOrganizationUID = "1.2.826.0.1.3680043.9.7777.6"
    index.DimensionIndexPointer = 0x00209157
    index.DimensionDescriptionLabel = f"Stack of {NAME}"
    ds.DimensionIndexSequence = Sequence([index])
    return ds


def test_enhanced_mr_functional_groups_kept_identifiers_inside_removed(pz) -> None:  # type: ignore[no-untyped-def]
    out = deidentify_dataset(_enhanced_dwi(), DeidContext(pz))
    timing = out.SharedFunctionalGroupsSequence[0].MRTimingAndRelatedParametersSequence[0]
    assert (timing.RepetitionTime, timing.FlipAngle, timing.EchoTrainLength) == (4200.0, 90.0, 64)
    assert out.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing == [2.0, 2.0]
    for i, frame in enumerate(out.PerFrameFunctionalGroupsSequence):
        diffusion = frame.MRDiffusionSequence[0]
        assert diffusion.DiffusionBValue == (1000.0 if i else 0.0)
        assert diffusion.DiffusionDirectionality == "DIRECTIONAL"
        assert len(diffusion.DiffusionGradientDirectionSequence[0].DiffusionGradientOrientation) == 3
        assert frame.MREchoSequence[0].EffectiveEchoTime == 85.0
        assert frame.PlanePositionSequence[0].ImagePositionPatient[2] == i * 5
        content = frame.FrameContentSequence[0]
        assert list(content.DimensionIndexValues) == [1, i + 1]
        assert content.get("FrameComments", "") == ""  # X, cleaned under Clean Descriptors
        assert content.FrameAcquisitionDateTime != "20200115101500"  # shifted
        derivation = frame.DerivationImageSequence[0]
        assert derivation.get("DerivationDescription", "") == ""
        source = derivation.SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == pz.uid(f"1.2.826.0.1.3680043.9.7777.5.{i}")
    index = out.DimensionIndexSequence[0]
    assert index.DimensionOrganizationUID == pz.uid("1.2.826.0.1.3680043.9.7777.6")
    assert NAME.lower() not in str(out).lower()


def _ge_dwi_series(folder: Path) -> None:
    """A GE diffusion series (4 volumes x 3 slices of 8x8) whose b-values and vectors are private."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

    folder.mkdir(parents=True)
    directions = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    for volume, direction in enumerate(directions):
        for z in range(3):
            number = volume * 3 + z + 1
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = (
                f"1.2.826.0.1.3680043.9.7777.8.{number}"
            )
            ds.StudyInstanceUID, ds.SeriesInstanceUID = (
                "1.2.826.0.1.3680043.9.7777.9",
                "1.2.826.0.1.3680043.9.7777.10",
            )
            ds.Modality, ds.Manufacturer = "MR", "GE MEDICAL SYSTEMS"
            ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 5, number, 1
            ds.StudyDate, ds.SeriesTime, ds.AcquisitionTime = "20200115", "101500", "101500"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
            ds.ImagePositionPatient = [-8.0, -8.0, float(z * 4)]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.SliceThickness = [2, 2], 4
            ds.EchoTime, ds.RepetitionTime, ds.MagneticFieldStrength = 80, 4000, 3
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.PixelData = (np.arange(64, dtype=np.int16) + 100 * volume + 10 * z).tobytes()
            acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
            for element, value in zip((0xBB, 0xBC, 0xBD), direction, strict=True):
                acq.add_new(element, "DS", str(value))
            acq.add_new(0x9C, "LO", f"epi {NAME}")
            parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
            parm.add_new(0x39, "IS", [str(1_000_000_000 + (1000 if volume else 0)), "8", "0", "0"])
            plant(ds)
            ds.save_as(folder / f"im{number:03d}.dcm", enforce_file_format=True)


@needs_dcm2niix
def test_ge_diffusion_series_keeps_bvalues_and_vectors(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _ge_dwi_series(src)
    out = _run(tmp_path, src)
    original, deidentified = _nifti(src, tmp_path / "n1"), _nifti(out, tmp_path / "n2")
    assert original[".bval"] == ["0", "1000", "1000", "1000"]
    assert deidentified == original
    for path in out.rglob("*.dcm"):
        assert NAME.encode() not in path.read_bytes()
