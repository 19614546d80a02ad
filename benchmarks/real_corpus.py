"""Gather a corpus of public real DICOM files for the de-identification benchmark (not committed).

Sources, each a git snapshot of a public repository (``git archive`` of the listed folders):

* neurolabusc dcm_qa* scanner test sets (Siemens mosaics and enhanced XA, GE DWI and fMRI, Philips
  classic and enhanced DWI/fMRI, UIH DTI), BSD-2 / public test data of dcm2niix;
* highdicom's ``data/test_files`` (CT, DX, SEG, SR, slide microscopy), MIT;
* pydicom's bundled test files (several modalities and transfer syntaxes), MIT.

Run: ``.venv/bin/python benchmarks/real_corpus.py --mirrors DIR --out bench-output/real_corpus`` where
``DIR`` holds ``<owner>+<name>/repo`` git directories (as the ``fetch`` tool writes them). Folders of
one series stay together, so dcm2niix can be run per source folder.
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

#: repository -> folders taken from its newest commit.
SOURCES: dict[str, list[str]] = {
    "neurolabusc/dcm_qa": ["In/Orientation", "In/TotalReadoutTime"],
    "neurolabusc/dcm_qa_nih": ["In/20180918GE/mr_0004", "In/20180918GE/mr_0005", "In/20180918Si"],
    "neurolabusc/dcm_qa_ge": [
        "In/01_Ax_DWI_TENSOR_R2",
        "In/02_Ax_DWI_TENSOR_R3",
        "In/03_Ax_DWI_TENSOR_R1p5",
        "In/04_Ax_DWI_TENSOR_R2MB2",
        "In/SliceTiming/fMRI_Slicetimestamps",
    ],
    "neurolabusc/dcm_qa_stc": ["In/Siemens", "In/UIH", "In/GE/RTIA"],
    "neurolabusc/dcm_qa_philips": ["In/Magdeburg_2014"],
    "neurolabusc/dcm_qa_philips_dwi": ["In/cl", "In/enh"],
    "neurolabusc/dcm_qa_enh": ["In/Philips", "In/Siemens"],
    "ImagingDataCommons/highdicom": ["data/test_files"],
}


def _export(git_dir: Path, folders: list[str], out: Path) -> int:
    """Files of ``folders`` at HEAD of ``git_dir`` (those present in the snapshot) under ``out``."""
    listed = subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", "-C", str(git_dir), "ls-tree", "-r", "-l", "HEAD", "--", *folders],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    paths = [line.split("\t", 1)[1] for line in listed if line.split()[3] != "-" and _present(git_dir, line)]
    if not paths:
        return 0
    data = subprocess.run(  # noqa: S603
        ["git", "-C", str(git_dir), "archive", "HEAD", "--", *paths],  # noqa: S607
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(out, filter="data")
    for packed in out.rglob("*.gz"):  # some sets ship gzipped instances
        packed.with_suffix("").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    return len(paths)


def _present(git_dir: Path, line: str) -> bool:
    blob = line.split()[2]
    return (
        subprocess.run(  # noqa: S603
            ["git", "-C", str(git_dir), "cat-file", "-e", blob],  # noqa: S607
            capture_output=True,
        ).returncode
        == 0
    )


def _pydicom_files(out: Path) -> int:
    from pydicom.data import get_testdata_files

    count = 0
    for path in get_testdata_files("*.dcm"):
        target = out / "pydicom" / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        count += 1
    return count


def gather(mirrors: Path, out: Path) -> dict[str, int]:
    """Export every source present under ``mirrors`` into ``out``; files per source."""
    counts = {}
    for repo, folders in SOURCES.items():
        git_dir = mirrors / repo.replace("/", "+") / "repo"
        if git_dir.exists():
            counts[repo] = _export(git_dir, folders, out / repo.split("/")[1])
    counts["pydicom"] = _pydicom_files(out)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("bench-output/real_corpus"))
    args = parser.parse_args()
    for source, count in gather(args.mirrors, args.out).items():
        print(f"{source}: {count} files")


if __name__ == "__main__":
    main()
