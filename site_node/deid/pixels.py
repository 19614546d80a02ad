"""Pixel data of one instance as an array that can be blanked in rectangles and written back.

Three ways back, chosen by the transfer syntax (PS3.5 Annex A):

* ``native``: uncompressed little endian (implicit, explicit, deflated) with monochrome, RGB,
  YBR_FULL or palette colour pixels. Only the bytes of the redacted rectangles change; every other
  byte of the Pixel Data element is the input's, and the transfer syntax is kept.
* ``reencode``: RLE Lossless and JPEG-LS Lossless, for which pydicom has its own encoder. Frames are
  decoded, blanked and encoded again in the same transfer syntax; the result is decoded once more
  and compared with the redacted array, so the encoding is known to be lossless.
* ``uncompressed``: everything else a decoder is installed for (JPEG baseline and extended, JPEG
  2000, JPEG-LS near-lossless, big endian, YBR_FULL_422). The decoded frames are written as
  Explicit VR Little Endian: re-encoding a lossy stream would change the whole image. Colour is
  written as RGB; LossyImageCompression stays (or becomes) ``01`` when the input was lossy.

Anything else (no decoder, 1-bit or float pixels, video) raises :class:`PixelsUnsupported`: the
caller quarantines the instance.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

NATIVE_LE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian})
#: Lossless transfer syntaxes that pydicom can encode again itself.
REENCODABLE = frozenset({RLELossless, JPEGLSLossless})
#: Transfer syntaxes that are lossless by definition (a JPEG 2000 stream may be either: not here).
LOSSLESS = NATIVE_LE | REENCODABLE | {JPEG2000Lossless, JPEGLosslessSV1, UID("1.2.840.10008.1.2.4.57")}
_NATIVE_PI = frozenset({"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "PALETTE COLOR"})
_DTYPES = {8: "u1", 16: "<u2", 32: "<u4"}

Rect = tuple[int, int, int, int, int]  # frame, top, bottom, left, right (bottom/right exclusive)


class PixelsUnsupported(ValueError):
    """The pixel data cannot be decoded or written back here; ``field`` names the reason's tag."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Pixels:
    """Decoded frames ``(frames, rows, columns[, samples])`` and how to write them back."""

    values: np.ndarray
    photometric: str
    mode: str  # native | reencode | uncompressed
    source_ts: UID
    meta: dict[str, Any]
    fill: np.ndarray = field(init=False)
    rects: list[Rect] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fill = np.zeros(0)

    @property
    def frames(self) -> int:
        return int(self.values.shape[0])

    def redact(self, frame: int, top: int, bottom: int, left: int, right: int) -> bool:
        """Blank one rectangle of one frame with the background value; False when it is empty."""
        rows, cols = self.values.shape[1:3]
        top, left = max(0, top), max(0, left)
        bottom, right = min(rows, bottom), min(cols, right)
        if bottom <= top or right <= left:
            return False
        self.values[frame, top:bottom, left:right] = self.fill
        self.rects.append((frame, top, bottom, left, right))
        return True


def _int(ds: Dataset, keyword: str, default: int = 0) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return default


def _decode(ds: Dataset, ts: UID, raw: bool) -> tuple[np.ndarray, dict[str, Any]]:
    decoder = get_decoder(ts)
    if not decoder.is_available:
        raise PixelsUnsupported("no decoder installed for the transfer syntax", "(0002,0010)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr, meta = decoder.as_array(ds, raw=raw)
    except Exception:
        raise PixelsUnsupported("the pixel data could not be decoded", "(7FE0,0010)") from None
    return arr, dict(meta)


def load(ds: Dataset) -> Pixels:
    """Decode the frames of ``ds`` for redaction.

    Raises:
        PixelsUnsupported: no pixel data, 1-bit or float pixels, no decoder, or a decoding error.
    """
    if "PixelData" not in ds:
        raise PixelsUnsupported("no integer pixel data", "(7FE0,0010)")
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if _int(ds, "BitsAllocated") not in _DTYPES:
        raise PixelsUnsupported("bits allocated other than 8, 16 or 32", "(0028,0100)")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if ts in NATIVE_LE and photometric in _NATIVE_PI:
        mode = "native"
    elif ts in REENCODABLE and photometric in _NATIVE_PI:
        mode = "reencode"
    else:
        mode = "uncompressed"
    arr, meta = _decode(ds, ts, raw=mode != "uncompressed")
    samples = int(meta.get("samples_per_pixel", 1) or 1)
    rows, cols = int(meta["rows"]), int(meta["columns"])
    shape = (-1, rows, cols) + ((samples,) if samples > 1 else ())
    values = np.array(arr).reshape(shape)
    out = Pixels(values, str(meta.get("photometric_interpretation", photometric)), mode, ts, meta)
    out.fill = _fill(out, ds)
    return out


def _fill(px: Pixels, ds: Dataset) -> np.ndarray:
    """The background value: black in the image's own representation."""
    pi, values = px.photometric, px.values
    if pi == "MONOCHROME2":
        return np.asarray(values.min())
    if pi == "MONOCHROME1":
        return np.asarray(values.max())
    if pi == "RGB":
        return np.zeros(values.shape[-1], dtype=values.dtype)
    if pi == "YBR_FULL":
        mid = 1 << (int(px.meta.get("bits_stored", 8) or 8) - 1)
        return np.array([0, mid, mid], dtype=values.dtype)
    if pi == "PALETTE COLOR":
        indices = np.unique(values)
        rgb = apply_color_lut(indices, ds).astype(np.float64)
        return np.asarray(indices[int(np.argmin(rgb.sum(axis=-1)))])
    raise PixelsUnsupported("photometric interpretation not handled", "(0028,0004)")


def render(px: Pixels, ds: Dataset, frame: int) -> np.ndarray:
    """A contrast-normalised 8-bit grey rendition of one frame, for OCR (dark = low)."""
    values = px.values[frame]
    if px.photometric == "PALETTE COLOR":
        values = apply_color_lut(values, ds)
    elif px.photometric == "YBR_FULL":
        values = convert_color_space(values, "YBR_FULL", "RGB")
    grey = values.astype(np.float32)
    if grey.ndim == 3:  # luminance (ITU-R BT.601)
        grey = grey[..., 0] * 0.299 + grey[..., 1] * 0.587 + grey[..., 2] * 0.114
    if px.photometric == "MONOCHROME1":
        grey = -grey
    low, high = float(grey.min()), float(grey.max())
    if high <= low:
        return np.zeros(grey.shape, dtype=np.uint8)
    return ((grey - low) * (255.0 / (high - low))).round().astype(np.uint8)


def _native_view(ds: Dataset, px: Pixels, buffer: bytearray) -> np.ndarray:
    bits = _int(ds, "BitsAllocated")
    frames, rows, cols = px.values.shape[:3]
    samples = px.values.shape[3] if px.values.ndim == 4 else 1
    flat = np.frombuffer(buffer, dtype=_DTYPES[bits], count=frames * rows * cols * samples)
    if samples == 1:
        return flat.reshape(frames, rows, cols)
    if _int(ds, "PlanarConfiguration") == 1:
        return flat.reshape(frames, samples, rows, cols).transpose(0, 2, 3, 1)
    return flat.reshape(frames, rows, cols, samples)


def _save_native(ds: Dataset, px: Pixels) -> UID:
    original = bytes(ds.PixelData)
    buffer = bytearray(original)
    raw = _native_view(ds, px, buffer)
    if px.values.ndim == 3:  # the stored word of a background pixel (keeps unused high bits as found)
        where = np.argwhere(px.values == px.fill)
        fill = raw[tuple(where[0])] if len(where) else px.fill
    else:
        fill = px.fill.astype(raw.dtype)
    for frame, top, bottom, left, right in px.rects:
        raw[frame, top:bottom, left:right] = fill
    ds.PixelData = bytes(buffer)
    return px.source_ts


def _save_reencoded(ds: Dataset, px: Pixels) -> UID:
    arr = px.values if "NumberOfFrames" in ds else px.values[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(px.source_ts, arr, generate_instance_uid=False)
            check, _ = get_decoder(px.source_ts).as_array(ds, raw=True)
    except Exception:
        raise PixelsUnsupported("the redacted frames could not be encoded again", "(7FE0,0010)") from None
    if not np.array_equal(np.asarray(check).reshape(px.values.shape), px.values):
        raise PixelsUnsupported("re-encoding the redacted frames was not lossless", "(7FE0,0010)")
    return px.source_ts


def _save_uncompressed(ds: Dataset, px: Pixels) -> UID:
    meta = px.meta
    bits = int(meta.get("bits_allocated", 8) or 8)
    data = px.values.astype(np.dtype(_DTYPES[bits])).tobytes()
    if len(data) % 2:
        data += b"\x00"
    del ds["PixelData"]
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    ds.add_new(0x7FE00010, "OB" if bits == 8 else "OW", data)
    ds.PhotometricInterpretation = px.photometric
    ds.SamplesPerPixel = int(meta.get("samples_per_pixel", 1) or 1)
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds["PlanarConfiguration"]
    ds.BitsAllocated = bits
    ds.BitsStored = int(meta.get("bits_stored", bits) or bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(meta.get("pixel_representation", 0) or 0)
    if px.source_ts not in LOSSLESS:
        ds.LossyImageCompression = "01"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return UID(ExplicitVRLittleEndian)


def save(ds: Dataset, px: Pixels) -> UID:
    """Write the redacted frames back into ``ds``; returns the transfer syntax to write it in.

    Raises:
        PixelsUnsupported: a re-encoding failed or was not lossless.
    """
    if not px.rects:
        return px.source_ts
    if px.mode == "native":
        return _save_native(ds, px)
    if px.mode == "reencode":
        return _save_reencoded(ds, px)
    return _save_uncompressed(ds, px)
