"""Synthetic images with text burned into the pixels, as ultrasound machines and screen captures do.

Used by the burned-in text tests and ``benchmarks/burned_in_bench.py``. Text is drawn with PIL
(a TrueType font file when given, else PIL's bundled default font) into ultrasound-like frames
(speckle in a sector that changes from frame to frame) or flat screen captures, in grey or colour,
8 or 16 bits, and wrapped in a DICOM dataset of the right class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass
class Planted:
    """One piece of text drawn into the image: its tokens and its box (left, top, right, bottom)."""

    text: str
    box: tuple[int, int, int, int]

    @property
    def tokens(self) -> list[str]:
        return [t for t in self.text.replace("^", " ").split() if len(t) >= 3]


@dataclass
class TextImage:
    """Frames ``(n, rows, cols[, 3])`` and what was drawn into every frame."""

    frames: np.ndarray
    planted: list[Planted] = field(default_factory=list)


def font(path: str | None, size: int) -> Font:
    """A TrueType font at ``size`` px, or PIL's bundled default font at that size."""
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def _speckle(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Fully developed speckle: the magnitude of low-pass filtered complex noise (grains of a few px)."""
    field = rng.normal(size=(rows, cols)) + 1j * rng.normal(size=(rows, cols))
    fy, fx = np.fft.fftfreq(rows)[:, None], np.fft.fftfreq(cols)[None, :]
    grains = np.fft.ifft2(np.fft.fft2(field) * np.exp(-((fy**2 + fx**2) * (2 * np.pi * 1.2) ** 2) / 2))
    magnitude = np.abs(grains)
    return np.clip(magnitude * (70 / magnitude.mean()), 0, 255).astype(np.uint8)


def ultrasound_frames(rows: int, cols: int, frames: int, seed: int = 0, colour: bool = False) -> np.ndarray:
    """Speckle in a fan-shaped sector on black, different in every frame (a cine loop)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    apex = -0.1 * rows
    radius = np.hypot(xx - cols / 2, yy - apex)
    sector = (radius < rows * 0.92) & (np.abs(xx - cols / 2) < (yy - apex) * 0.7) & (yy > rows * 0.15)
    out = np.zeros((frames, rows, cols), dtype=np.uint8)
    for k in range(frames):
        out[k][sector] = _speckle(rng, rows, cols)[sector]
    if colour:
        out = np.repeat(out[..., None], 3, axis=-1)
    return out


def screen_frames(rows: int, cols: int, colour: bool = False, light: bool = False) -> np.ndarray:
    """One flat screen capture: a dark (or light) background with a grey gradient panel."""
    base = np.full((1, rows, cols), 235 if light else 16, dtype=np.uint8)
    panel = np.linspace(60, 200, cols // 2, dtype=np.uint8)[None, :]
    base[0, rows // 3 : rows // 3 + rows // 3, cols // 4 : cols // 4 + cols // 2] = panel
    return np.repeat(base[..., None], 3, axis=-1) if colour else base


def burn(
    image: TextImage, text: str, xy: tuple[int, int], typeface: Font, fill: int | tuple[int, int, int]
) -> None:
    """Draw ``text`` at ``xy`` into every frame of ``image`` and record it."""
    box: tuple[int, int, int, int] | None = None
    for k in range(image.frames.shape[0]):
        pil = Image.fromarray(image.frames[k])
        draw = ImageDraw.Draw(pil)
        draw.text(xy, text, font=typeface, fill=fill)
        box = tuple(int(v) for v in draw.textbbox(xy, text, font=typeface))  # type: ignore[assignment]
        image.frames[k] = np.asarray(pil)
    assert box is not None
    image.planted.append(Planted(text, box))


def to_16bit(frames: np.ndarray, bits_stored: int = 12) -> np.ndarray:
    """Spread 8-bit values over ``bits_stored`` bits (a 16-bit grey image)."""
    return (frames.astype(np.uint16) << (bits_stored - 8)) | (frames.astype(np.uint16) >> (16 - bits_stored))


def dataset(frames: np.ndarray, modality: str, bits_stored: int = 8) -> Dataset:
    """A Part 10-ready dataset around ``frames`` (US multi-frame, US image or secondary capture)."""
    multi = frames.shape[0] > 1
    colour = frames.ndim == 4
    ds = Dataset()
    if modality == "US":
        ds.SOPClassUID = US_MULTIFRAME if multi else US_IMAGE
    else:
        ds.SOPClassUID = SECONDARY_CAPTURE
        ds.ConversionType = "WSD"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    ds.PatientID, ds.PatientName = "MRN0000001", "Test^Burned"
    ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20240102", 1, 1
    ds.BurnedInAnnotation = "YES"
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    bits = 8 if frames.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if multi:
        ds.NumberOfFrames = frames.shape[0]
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = 33.3
    ds.PixelData = np.ascontiguousarray(frames if multi else frames[0]).tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds
