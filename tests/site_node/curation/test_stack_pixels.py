"""The volume a series assembles to: every voxel in stored units, in (column, row, slice) order."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from site_node.curation.series import _stack_pixels


def _slice(pixels: np.ndarray, slope: float, intercept: float) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = pixels.astype(np.int16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_every_voxel_lands_transposed_and_rescaled_per_slice() -> None:
    rng = np.random.default_rng(0)
    rows, columns = 130, 300  # not square, and wide enough to be split among threads
    raw = [rng.integers(-2000, 2000, (rows, columns)) for _ in range(7)]
    rescale = [(1.0, 0.0), (2.0, -1024.0), (0.5, 10.0), (1.0, -1024.0), (1.0, 0.0), (3.0, 0.0), (1.0, 5.5)]
    volume = _stack_pixels([_slice(p, s, i) for p, (s, i) in zip(raw, rescale, strict=True)])
    assert volume.shape == (columns, rows, 7) and volume.dtype == np.float32
    assert volume.flags["C_CONTIGUOUS"]
    for k, (pixels, (slope, intercept)) in enumerate(zip(raw, rescale, strict=True)):
        expected = (pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)).T
        assert np.array_equal(volume[:, :, k], expected)
