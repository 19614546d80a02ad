"""Does a de-identified corpus convert with dcm2niix as the originals do? Series-level parity.

Each NIfTI dcm2niix writes is reduced to a signature: image dimensions, voxel sizes, the sform and
qform (rounded to 1e-3 mm), the SHA-256 of the voxel data and, for diffusion, the b-values and
vectors (rounded). File names are not compared (they come from series descriptions, which the
profile cleans). Parity = share of the originals' series signatures found among the de-identified
ones. :func:`series_parity` converts each series on its own (the files of one original series, and
the outputs made from them) and counts the series whose signatures are all equal, so a mosaic of 36
slices instead of 35, a lost b-vector table or a series split in two volumes all count as a miss.

Run alone: ``.venv/bin/python benchmarks/dcm2niix_parity.py ORIGINALS DEIDENTIFIED``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import struct
import subprocess
import tempfile
from collections import Counter
from pathlib import Path


def _nifti_signature(path: Path) -> str:
    data = path.read_bytes()
    dims = struct.unpack_from("<8h", data, 40)
    pixdim = struct.unpack_from("<8f", data, 76)
    vox_offset = int(struct.unpack_from("<f", data, 108)[0])
    quatern = struct.unpack_from("<6f", data, 256)
    srow = struct.unpack_from("<12f", data, 280)
    parts = [
        "dim=" + ",".join(str(d) for d in dims[: dims[0] + 1]),
        "pix=" + ",".join(f"{p:.4f}" for p in pixdim[1 : dims[0] + 1]),
        "q=" + ",".join(f"{q:.3f}" for q in quatern),
        "s=" + ",".join(f"{s:.3f}" for s in srow),
        "data=" + hashlib.sha256(data[vox_offset:]).hexdigest()[:16],
    ]
    for suffix in (".bval", ".bvec"):
        side = path.with_suffix(suffix)
        if side.exists():
            numbers = [f"{float(x):.3f}" for x in side.read_text().split()]
            parts.append(suffix[1:] + "=" + ",".join(numbers))
    return "|".join(parts)


def signatures(folder: Path, dcm2niix: str = "dcm2niix") -> Counter[str]:
    """Signatures of every NIfTI dcm2niix writes for ``folder`` (walked recursively)."""
    out = Path(tempfile.mkdtemp(prefix="parity_"))
    try:
        subprocess.run(  # noqa: S603 - a fixed program and our own paths
            [dcm2niix, "-z", "n", "-b", "n", "-f", "%r_%s_%t", "-o", str(out), str(folder)],
            capture_output=True,
            timeout=1800,
            check=False,
        )
        return Counter(_nifti_signature(p) for p in sorted(out.glob("*.nii")))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def parity(original: Counter[str], deidentified: Counter[str]) -> tuple[int, int]:
    """(NIfTI of the originals found unchanged after de-identification, NIfTI of the originals)."""
    return sum((original & deidentified).values()), sum(original.values())


def group_signatures(groups: dict[str, list[Path]], dcm2niix: str = "dcm2niix") -> dict[str, Counter[str]]:
    """Signatures per series: each group of files (one series) converted on its own."""
    result = {}
    for key, paths in groups.items():
        folder = Path(tempfile.mkdtemp(prefix="series_"))
        try:
            for i, path in enumerate(paths):
                (folder / f"{i}.dcm").symlink_to(path.resolve())
            result[key] = signatures(folder, dcm2niix)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def series_parity(original: dict[str, Counter[str]], output: dict[str, Counter[str]]) -> tuple[int, int]:
    """(series that convert exactly as the original did, series of the originals that convert)."""
    converted = {key: sigs for key, sigs in original.items() if sigs}
    return sum(1 for key, sigs in converted.items() if output.get(key) == sigs), len(converted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("originals", type=Path)
    parser.add_argument("deidentified", type=Path)
    args = parser.parse_args()
    same, total = parity(signatures(args.originals), signatures(args.deidentified))
    print(f"dcm2niix series parity: {same}/{total} ({same / max(total, 1):.0%})")


if __name__ == "__main__":
    main()
