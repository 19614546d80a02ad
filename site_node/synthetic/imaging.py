"""Writers for the image series of one study: CT and MR volumes, a CR radiograph, US/SC captures."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)

from site_node.synthetic.burned_in import burn_digits, text_width
from site_node.synthetic.dicom_common import (
    StudyContext,
    UidFactory,
    header,
    instance_name,
    register_file,
    series_folder,
    write_dataset,
)
from site_node.synthetic.truth import PhiRegistry
from site_node.synthetic.volumes import quantize


@dataclass
class Writer:
    """Everything a series writer needs besides the pixels."""

    out: Path
    uids: UidFactory
    phi: PhiRegistry
    rng: np.random.Generator


@dataclass
class WrittenSeries:
    """A written series: its headers (without pixels, for SEG) and truth record."""

    record: dict
    sources: list[Dataset]
    phi: list[tuple[str, str, str]] = field(default_factory=list)


def _preamble(w: Writer, ctx: StudyContext) -> bool:
    return bool(w.rng.random() >= ctx.style.no_preamble_fraction)


def _grey(ds: Dataset, rows: int, cols: int, signed: bool, bits: int = 16) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0


def write_volume_series(
    w: Writer,
    ctx: StudyContext,
    modality: str,
    stored: np.ndarray,
    series_number: int,
    description: str,
    spacing: tuple[float, float, float],
    rescale: tuple[float, float] | None,
) -> WrittenSeries:
    """Write a multi-file axial series (CT or MR) with full geometry.

    Args:
        w: the writer context.
        ctx: the study.
        modality: ``CT`` or ``MR``.
        stored: stored pixel values, shape (slices, rows, columns), int16 or uint16.
        series_number: DICOM SeriesNumber.
        description: SeriesDescription.
        spacing: (row spacing, column spacing, slice spacing) in mm.
        rescale: (slope, intercept) for CT, None for MR.
    """
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    series_uid = w.uids.new("series")
    ds, phi = header(ctx, modality, series_uid, series_number, description, sop_class)
    _modality_attributes(ds, modality, ctx)
    _grey(ds, stored.shape[1], stored.shape[2], stored.dtype.kind == "i")
    ds.FrameOfReferenceUID = ctx.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing[0], spacing[1]]
    ds.SliceThickness = spacing[2]
    ds.BodyPartExamined = "CHEST"
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = -600, 1500
    origin = volume_origin(stored.shape, spacing)
    preamble = _preamble(w, ctx)
    folder = series_folder(ctx, series_number, modality)
    files: list[str] = []
    sources: list[Dataset] = []
    sop_uids: list[str] = []
    for k in range(stored.shape[0]):
        ds.SOPInstanceUID = w.uids.new("instance")
        ds.InstanceNumber = k + 1
        z = origin[2] + k * spacing[2]
        ds.ImagePositionPatient = [origin[0], origin[1], z]
        ds.SliceLocation = z
        if "PixelData" in ds:
            del ds.PixelData
        sources.append(copy.deepcopy(ds) if k == 0 else _slice_header(sources[0], ds))
        ds.PixelData = stored[k].tobytes()
        relative = folder / instance_name(ctx, series_number, k + 1)
        write_dataset(ds, w.out / relative, w.uids, ctx.style, preamble)
        register_file(w.phi, ctx, relative, phi)
        files.append(relative.as_posix())
        sop_uids.append(ds.SOPInstanceUID)
    record = _record(series_uid, modality, series_number, description, files, burned_in=False)
    record["sop_instance_uids"] = sop_uids
    record["preamble"] = preamble
    return WrittenSeries(record=record, sources=sources, phi=phi)


# what highdicom reads from every source image beyond the first (the first is a full copy)
_PER_SLICE = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation")


def _slice_header(first: Dataset, ds: Dataset) -> Dataset:
    """A cheap header for one more slice: the first slice's elements, with its own per-slice values."""
    out = Dataset()
    for element in first:  # shared, read-only elements; the per-slice ones are new objects below
        if element.keyword not in _PER_SLICE:
            out[element.tag] = element
    for keyword in _PER_SLICE:
        setattr(out, keyword, copy.copy(getattr(ds, keyword)))
    return out


def volume_origin(shape: tuple[int, ...], spacing: tuple[float, float, float]) -> tuple[float, float, float]:
    """Patient position of voxel (0, 0, 0): the volume is centred on x and y."""
    x0 = -round(shape[2] * spacing[1] / 2, 2)
    y0 = -round(shape[1] * spacing[0] / 2, 2)
    return (x0, y0, -100.0)


def _modality_attributes(ds: Dataset, modality: str, ctx: StudyContext) -> None:
    if modality == "CT":
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        ds.XRayTubeCurrent = 200
        ds.ConvolutionKernel = ctx.style.kernel
        ds.ContrastBolusAgent = "Omnipaque 350"
        ds.PatientPosition = "FFS"
    else:
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 500.0
        ds.EchoTime = 15.0
        ds.EchoTrainLength = 1
        ds.MagneticFieldStrength = 1.5
        ds.PatientPosition = "HFS"


def _record(
    series_uid: str, modality: str, number: int, description: str, files: list[str], burned_in: bool
) -> dict:
    return {
        "series_instance_uid": series_uid,
        "modality": modality,
        "series_number": number,
        "series_description": description,
        "instance_count": len(files),
        "files": files,
        "burned_in": burned_in,
    }


def make_mr_volume(rng: np.random.Generator, slices: int = 16) -> np.ndarray:
    """A simple T1-like body phantom (uint16) for the MR series."""
    z, y, x = np.meshgrid(np.arange(slices), np.arange(64), np.arange(64), indexing="ij")
    body = ((y - 32) / 29.0) ** 2 + ((x - 32) / 30.0) ** 2 <= 1.0
    organ = ((y - 30) / 12.0) ** 2 + ((x - 24) / 10.0) ** 2 + ((z - slices / 2) / (slices / 2.5)) ** 2 <= 1.0
    vol = np.where(body, 600.0, 5.0) + np.where(organ, 400.0, 0.0)
    vol += rng.normal(0, 20, size=vol.shape)
    return np.clip(np.rint(vol), 0, 4095).astype("<u2")


def write_cr(w: Writer, ctx: StudyContext, series_number: int) -> WrittenSeries:
    """Write one chest radiograph (CR, 128x128, 12-bit)."""
    series_uid = w.uids.new("series")
    description = "CHEST PA"
    ds, phi = header(ctx, "CR", series_uid, series_number, description, ComputedRadiographyImageStorage)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    _grey(ds, 128, 128, signed=False, bits=12)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImagerPixelSpacing = [2.0, 2.0]
    ds.PixelSpacing = [2.0, 2.0]
    y, x = np.mgrid[0:128, 0:128]
    lungs = (((x - 42) / 22.0) ** 2 + ((y - 64) / 40.0) ** 2 <= 1) | (
        ((x - 86) / 22.0) ** 2 + ((y - 64) / 40.0) ** 2 <= 1
    )
    img = np.where(lungs, 900.0, 2600.0) + w.rng.normal(0, 40, size=(128, 128))
    ds.SOPInstanceUID = w.uids.new("instance")
    ds.InstanceNumber = 1
    ds.PixelData = np.clip(np.rint(img), 0, 4095).astype("<u2").tobytes()
    return _write_single(w, ctx, ds, series_number, "CR", phi, description, burned_in=False)


def write_capture(w: Writer, ctx: StudyContext, series_number: int, modality: str) -> WrittenSeries:
    """Write an ultrasound image (US) or a secondary capture (OT) with burned-in annotation."""
    series_uid = w.uids.new("series")
    description = "US ABDOMEN LIMITED" if modality == "US" else "SCREEN CAPTURE DOSE REPORT"
    sop_class = UltrasoundImageStorage if modality == "US" else SecondaryCaptureImageStorage
    ds, phi = header(ctx, modality, series_uid, series_number, description, sop_class)
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if modality == "US" else ["DERIVED", "SECONDARY"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    text = "".join(c for c in ctx.patient.mrn if c.isdigit()) + f" {ctx.date}"
    rows, cols = 96, max(128, text_width(text) + 8)
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "YES"
    ds.PatientOrientation = ""
    if modality == "OT":
        ds.ConversionType = "WSD"
    img = (w.rng.random((rows, cols, 3)) * 60).astype(np.uint8)
    img[2:16, :, :] = 0
    burn_digits(img, text, top=4, left=4)  # MRN and date burned into the pixels, as devices do
    ds.SOPInstanceUID = w.uids.new("instance")
    ds.InstanceNumber = 1
    ds.PixelData = img.tobytes()
    written = _write_single(w, ctx, ds, series_number, modality, phi, description, burned_in=True)
    written.record["burned_in_text"] = text
    return written


def _write_single(
    w: Writer,
    ctx: StudyContext,
    ds: Dataset,
    series_number: int,
    modality: str,
    phi: list[tuple[str, str, str]],
    description: str,
    burned_in: bool,
) -> WrittenSeries:
    relative = series_folder(ctx, series_number, modality) / instance_name(ctx, series_number, 1)
    preamble = _preamble(w, ctx)
    write_dataset(ds, w.out / relative, w.uids, ctx.style, preamble)
    register_file(w.phi, ctx, relative, phi)
    record = _record(
        ds.SeriesInstanceUID, modality, series_number, description, [relative.as_posix()], burned_in
    )
    record["sop_instance_uids"] = [ds.SOPInstanceUID]
    record["preamble"] = preamble
    return WrittenSeries(record=record, sources=[])


def ct_stored(hu: np.ndarray, signed: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """Quantize a HU volume; returns stored values and (slope, intercept)."""
    intercept = -1024.0
    return quantize(hu, intercept, signed), (1.0, intercept)
