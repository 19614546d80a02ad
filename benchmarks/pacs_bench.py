"""PACS retrieval benchmark: dcmtk ``getscu`` (plain retrieval) vs ``site-node pacs pull`` (DIMSE, DICOMweb).

A real Orthanc on loopback holds ``--ct-studies`` CT studies of ``--slices`` 512x512 slices (16-bit)
plus ``--radiographs`` 2048x2048 radiographs. Measured in one run, each tool in its own process:

* ``getscu``: C-GET of every study to disk, no de-identification (the link's own limit);
* ``site-node pacs pull --via dimse``: C-FIND + C-GET + de-identification + journal;
* ``site-node pacs pull --via dicomweb``: QIDO-RS + WADO-RS + de-identification + journal;
* the DIMSE pull again on half and on all the CT studies (no radiographs), to see whether peak memory
  grows with the number of studies.

Usage: ``python benchmarks/pacs_bench.py [--ct-studies 10] [--slices 200] [--radiographs 6] [--workers 2]``.
Prints a table; the machine's load is printed with it (a shared machine makes absolute figures noisy).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, CTImageStorage, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.orthanc import Orthanc, free_port  # noqa: E402


def _instance(
    sop_class: str, study: str, series: str, acc: str, pid: str, rows: int, number: int, modality: str
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.AccessionNumber, ds.PatientID, ds.PatientName = acc, pid, f"BENCH^{pid}"
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "19600101", "O", "20240101", "120000"
    ds.Modality, ds.InstanceNumber, ds.SeriesNumber = modality, number, 1
    ds.StudyDescription = ds.SeriesDescription = "CT CHEST" if modality == "CT" else "CHEST PA"
    ds.BodyPartExamined = "CHEST"
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.BurnedInAnnotation = "NO"
    if modality == "CT":
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, number], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness, ds.RescaleIntercept, ds.RescaleSlope = [0.7, 0.7], 1.0, -1024, 1
    rng = np.random.default_rng(number)
    ds.PixelData = rng.integers(0, 4096, (rows, rows), dtype=np.uint16).tobytes()
    return ds


def make_data(folder: Path, ct_studies: int, slices: int, radiographs: int) -> tuple[list[str], int, int]:
    """Write the benchmark set; returns (accessions, CT images, radiographs)."""
    accessions = []
    for s in range(ct_studies):
        study, series, acc = generate_uid(), generate_uid(), f"BCT{s:05d}"
        accessions.append(acc)
        for i in range(slices):
            _instance(CTImageStorage, study, series, acc, f"P{s:04d}", 512, i + 1, "CT").save_as(
                folder / f"ct{s}_{i}.dcm", enforce_file_format=True
            )
    for r in range(radiographs):
        study, series, acc = generate_uid(), generate_uid(), f"BCR{r:05d}"
        accessions.append(acc)
        _instance(ComputedRadiographyImageStorage, study, series, acc, f"R{r:04d}", 2048, 1, "CR").save_as(
            folder / f"cr{r}.dcm", enforce_file_format=True
        )
    return accessions, ct_studies * slices, radiographs


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise RuntimeError(f"{cmd[0]} failed: {(proc.stderr.read() if proc.stderr else '')[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out


def getscu_all(orthanc: Orthanc, study_uids: list[str], out: Path) -> tuple[float, float]:
    """Plain C-GET of every study (one getscu process per study, as a script would)."""
    wall, peak = 0.0, 0.0
    for uid in study_uids:
        w, p, _ = _timed(
            [
                "getscu",
                "-S",
                "-aec",
                "ORTHANC",
                "-od",
                str(out),
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={uid}",
                "127.0.0.1",
                str(orthanc.dicom_port),
            ]
        )
        wall, peak = wall + w, max(peak, p)
    return wall, peak


def pull(
    orthanc: Orthanc, work: Path, name: str, accessions: list[str], via: str, workers: int
) -> tuple[float, float, str]:
    """One ``site-node pacs pull`` in a fresh site home."""
    from site_node.home import init_home, open_site
    from site_node.pacs.nodes import PacsNode, add_node

    home = work / name
    init_home(home, "bench")
    add_node(
        open_site(home).engine,
        PacsNode("bench", "ORTHANC", "127.0.0.1", orthanc.dicom_port, orthanc.dicomweb_url),
    )
    listing = work / f"{name}.txt"
    listing.write_text("\n".join(accessions) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITE_NODE_")}
    env.update(SITE_NODE_HOME=str(home), PYTHONPATH=str(REPO), SITE_NODE_PACS__PORT=str(free_port()))
    cmd = [
        sys.executable,
        "-c",
        "from site_node.cli import main; main()",
        "pacs",
        "pull",
        "bench",
        "--accessions",
        str(listing),
        "--via",
        via,
        "--workers",
        str(workers),
        "--json",
    ]
    return _timed(cmd, env)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ct-studies", type=int, default=10)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--radiographs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        accessions, n_ct, n_cr = make_data(work / "data", args.ct_studies, args.slices, args.radiographs)
        images = n_ct + n_cr
        with Orthanc(work / "orthanc") as orthanc:
            stored = orthanc.upload(sorted((work / "data").glob("*.dcm")))
            assert stored == images, "Orthanc did not store every instance"
            study_uids = [str(s) for s in orthanc.get_json("/studies")]  # Orthanc ids: map to UIDs
            uids = [
                orthanc.get_json(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"] for s in study_uids
            ]  # type: ignore[index]
            (work / "getscu").mkdir()
            rows = []
            wall, peak = getscu_all(orthanc, uids, work / "getscu")
            rows.append(("getscu (C-GET, no de-id)", wall, peak, images))
            for via in ("dimse", "dicomweb"):
                w, p, _ = pull(orthanc, work, f"pull-{via}", accessions, via, args.workers)
                rows.append((f"site-node pacs pull --via {via}", w, p, images))
            # memory against the number of studies: CT only (a 2048x2048 radiograph alone moves the peak)
            for count in (args.ct_studies // 2, args.ct_studies):
                subset = accessions[:count]
                w, p, _ = pull(orthanc, work, f"pull-ct{count}", subset, "dimse", args.workers)
                rows.append((f"pull --via dimse, {count} CT studies only", w, p, count * args.slices))
    base = rows[0][1]
    load = os.getloadavg()
    print(
        f"\n{n_ct} CT images 512x512 ({args.ct_studies} studies) + {n_cr} radiographs 2048x2048; "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} (shared machine: noisy)"
    )
    print(f"{'tool':46s} {'wall s':>8s} {'s/image':>8s} {'images/s':>9s} {'x getscu':>8s} {'peak MiB':>9s}")
    for name, wall, peak, n in rows:
        ratio = f"{wall / base:.2f}" if n == images else "-"
        print(f"{name:46s} {wall:8.1f} {wall / n:8.4f} {n / wall:9.1f} {ratio:>8s} {peak:9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
