"""Synthetic CT volumes (a chest-like phantom) with ellipsoid lesions and their masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from site_node.synthetic.styles import SiteStyle

SHAPE = (32, 64, 64)  # (slices, rows, columns)
AIR_HU = -1000.0
LUNG_HU = -820.0


@dataclass
class Lesion:
    """One ellipsoid lesion in voxel and patient coordinates."""

    centre_voxel: tuple[int, int, int]  # (slice, row, column)
    radii_mm: tuple[float, float, float]  # (x, y, z)
    voxel_count: int = 0
    volume_mm3: float = 0.0
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class CtVolume:
    """A CT volume in HU, its lesion mask and the lesions."""

    hu: np.ndarray  # float32, SHAPE
    mask: np.ndarray  # uint8, SHAPE
    lesions: list[Lesion]


Grid = tuple[np.ndarray, np.ndarray, np.ndarray]


def _grid(shape: tuple[int, int, int]) -> Grid:
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    return z, y, x


def _ellipsoid(grid: Grid, centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    z, y, x = grid
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + (
        (x - centre[2]) / radii[2]
    ) ** 2 <= 1.0


def _lungs(grid: Grid) -> np.ndarray:
    rows, cols = SHAPE[1], SHAPE[2]
    left = _ellipsoid(
        grid, (SHAPE[0] / 2, rows * 0.48, cols * 0.31), (SHAPE[0] * 0.62, rows * 0.30, cols * 0.16)
    )
    right = _ellipsoid(
        grid, (SHAPE[0] / 2, rows * 0.48, cols * 0.69), (SHAPE[0] * 0.62, rows * 0.30, cols * 0.16)
    )
    return left | right


def make_ct_volume(rng: np.random.Generator, style: SiteStyle, n_lesions: int) -> CtVolume:
    """Build a chest phantom with ``n_lesions`` lesions inside the lungs.

    Args:
        rng: the seeded generator.
        style: the site style (noise, intensities, lesion size, spacing).
        n_lesions: number of lesions (1 to 3).

    Returns:
        The volume in HU (before quantization), its binary mask and the lesions.
    """
    grid = _grid(SHAPE)
    rows, cols = SHAPE[1], SHAPE[2]
    body = _ellipsoid(grid, (SHAPE[0] / 2, rows / 2, cols / 2), (SHAPE[0] * 4.0, rows * 0.45, cols * 0.47))
    lungs = _lungs(grid)
    hu = np.full(SHAPE, AIR_HU, dtype=np.float32)
    hu[body] = style.tissue_hu
    hu[lungs] = LUNG_HU
    spine = _ellipsoid(
        grid, (SHAPE[0] / 2, rows * 0.80, cols / 2), (SHAPE[0] * 4.0, rows * 0.07, cols * 0.06)
    )
    hu[spine] = 700.0
    mask = np.zeros(SHAPE, dtype=np.uint8)
    lesions = [_place_lesion(rng, style, grid, lungs, mask) for _ in range(n_lesions)]
    hu[mask > 0] = style.lesion_hu
    hu += rng.normal(0.0, style.noise_sd_hu, size=SHAPE).astype(np.float32)
    return CtVolume(hu=hu, mask=mask, lesions=lesions)


def _place_lesion(
    rng: np.random.Generator, style: SiteStyle, grid: Grid, lungs: np.ndarray, mask: np.ndarray
) -> Lesion:
    """Draw one lesion whose centre lies in a lung and which does not touch earlier lesions."""
    dy, dx = style.pixel_spacing_mm
    dz = style.slice_thickness_mm
    candidates = np.argwhere(lungs & (mask == 0))
    for _ in range(200):
        z, y, x = (int(v) for v in candidates[int(rng.integers(len(candidates)))])
        centre = (z, y, x)
        rx, ry, rz = (float(round(rng.uniform(*style.lesion_radius_mm), 2)) for _ in range(3))
        radii_mm = (rx, ry, rz)
        radii_vox = (radii_mm[2] / dz, radii_mm[1] / dy, radii_mm[0] / dx)
        blob = _ellipsoid(grid, centre, radii_vox)
        margin = np.zeros_like(blob)
        margin[1:-1, 1:-1, 1:-1] = True
        inside = (blob & lungs).sum() >= 0.85 * blob.sum()
        if inside and not (blob & mask.astype(bool)).any() and (blob <= margin).all():
            break
    mask[blob] = 1
    count = int(blob.sum())
    return Lesion(
        centre_voxel=centre,
        radii_mm=radii_mm,
        voxel_count=count,
        volume_mm3=round(count * dx * dy * dz, 3),
    )


def quantize(hu: np.ndarray, intercept: float, signed: bool) -> np.ndarray:
    """Turn HU into stored values with slope 1 and ``intercept``."""
    stored = np.rint(hu - intercept)
    if signed:
        return np.clip(stored, -32768, 32767).astype("<i2")
    return np.clip(stored, 0, 65535).astype("<u2")
