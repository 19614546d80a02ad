"""Clinical inference latency: C-STORE of a study's last instance -> SEG + SR stored in Orthanc.

The DIANA loop on loopback: this script plays the hospital PACS forwarding each new CT study to the
site node's ``pacs listen`` (a ``[[routes]]`` entry naming the seg3d model); the node infers when the
study is complete (quiet period ``--quiet``) and stores the DICOM-SEG and the TID 1500 SR into a real
Orthanc by C-STORE. For each of ``--studies`` studies of ``--slices`` 512x512 CT slices, sent one after
the other, it measures:

* latency: the last C-STORE's response -> both results visible in Orthanc (REST), which includes
  noticing that the study is complete (the site defaults: on the sender's association release, with
  the 2 s release grace overlapping the compute, or after the 20 s quiet period) and the bench's 0.1 s
  polling;
* the node's own record (``inference_run``): model compute (sliding-window forward passes) and the
  time from "study complete" to "results stored";
* the peer measured in the same run: the model's forward pass alone on the same volume, with the
  inference window and with the training patch as window (the naive setting), once each.

The latency is split into: before the model's run (completion noticed, spooled files read, volume
assembled), the node's processing besides the forward passes (pre-processing, lesions, SEG + SR,
C-STORE), and after the node (Orthanc indexing, polling).

Usage: ``python benchmarks/infer_bench.py [--studies 20] [--slices 200] [--quiet 20] [--grace 2]
[--no-release] [--device cpu]``.
The machine is shared: its load average is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.orthanc import Orthanc  # noqa: E402

PACS_AET = "ORTHANC"
SPACING = (0.7, 0.7, 1.25)


def phantom(slices: int, size: int = 512, seed: int = 0) -> np.ndarray:
    """A CT-like volume in HU, (slice, row, column), in the style the model was trained on
    (``site_node.training.toy_data``: soft tissue with noise, bright spherical lesions): three lesions."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(40.0, 20.0, (slices, size, size)).astype(np.float32)
    zz, yy, xx = np.ogrid[0:slices, 0:size, 0:size]
    for cz, cy, cx, r in ((0.4, 0.45, 0.3, 12.0), (0.6, 0.5, 0.7, 9.0), (0.5, 0.35, 0.66, 6.0)):
        inside = (
            ((zz - cz * slices) * SPACING[2]) ** 2
            + ((yy - cy * size) * SPACING[0]) ** 2
            + ((xx - cx * size) * SPACING[1]) ** 2
        ) <= r**2
        volume[np.broadcast_to(inside, volume.shape)] += 120.0
    return np.clip(np.rint(volume), -1024, 3071).astype(np.int16)


def study_datasets(pixels: np.ndarray, number: int) -> list[Dataset]:
    """One identified CT study (fresh UIDs, accession and patient) over ``pixels``."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(pixels.shape[0]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PositionReferenceIndicator = ""
        ds.AccessionNumber, ds.PatientID = f"BENCH{number:05d}", f"MRN{number:07d}"
        ds.PatientName, ds.PatientBirthDate, ds.PatientSex = f"BENCH^PATIENT{number}", "19600101", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.ReferringPhysicianName = "20240101", "120000", "1", ""
        ds.Modality, ds.Manufacturer, ds.BodyPartExamined = "CT", "bench", "CHEST"
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.StudyDescription = ds.SeriesDescription = "CT CHEST"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-179.2, -179.2, k * SPACING[2]]
        ds.PixelSpacing, ds.SliceThickness = list(SPACING[:2]), SPACING[2]
        ds.KVP, ds.AcquisitionNumber = 120, 1
        ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.PixelData = pixels[k].tobytes()
        out.append(ds)
    return out


def send(datasets: list[Dataset], port: int) -> float:
    """C-STORE every instance to the node as the PACS would; returns when the last one was answered."""
    from pynetdicom import AE

    ae = AE(ae_title=PACS_AET)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="SITENODE")
    if not assoc.is_established:
        raise RuntimeError("the node refused the association")
    for ds in datasets:
        status = assoc.send_c_store(ds)
        if not status or status.Status != 0:
            raise RuntimeError("a C-STORE failed")
    last = time.time()
    assoc.release()
    return last


def wait_results(orthanc: Orthanc, study_uid: str, timeout: float = 900) -> float:
    """Poll Orthanc until the study holds a SEG and an SR; returns when both were seen."""
    import urllib.request

    body = json.dumps({"Level": "Series", "Query": {"StudyInstanceUID": study_uid}, "Expand": True}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{orthanc.url}/tools/find", data=body, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            modalities = {s["MainDicomTags"].get("Modality") for s in json.loads(resp.read())}
        if {"SEG", "SR"} <= modalities:
            return time.time()
        time.sleep(0.1)
    raise TimeoutError("results did not reach Orthanc")


def make_site(
    root: Path, orthanc: Orthanc, quiet: float, grace: float, release: bool, weights: Path
) -> object:
    from site_node.home import init_home, open_site
    from site_node.models.store import register
    from site_node.pacs.nodes import PacsNode, add_node

    home = root / "site"
    init_home(home, "bench-site")
    toml = home / "site.toml"
    toml.write_text(
        toml.read_text()
        + f'\n[pacs]\naet = "SITENODE"\nport = 11112\nbind = "127.0.0.1"\nquiet_period_s = {quiet}\n'
        + f"release_grace_s = {grace}\ncomplete_on_release = {str(release).lower()}\n"
        + '\n[[routes]]\nname = "ct"\nmodality = "CT"\nmodel = "seg3d"\n'
    )
    site = open_site(home)
    add_node(site.engine, PacsNode("pacs", PACS_AET, "127.0.0.1", orthanc.dicom_port))
    register(
        site.engine, home, name="seg3d", version=1, source="file", weights=weights, template="seg3d", card={}
    )
    return site


def peer_compute(pixels: np.ndarray, weights: Path, device: str) -> dict[str, float]:
    """The forward passes alone: inference window vs the training patch as window (naive)."""
    import torch
    from monai.inferers import sliding_window_inference

    from site_node.inference.network import load_weights_file
    from site_node.inference.predict import OVERLAP, segment
    from site_node.training.data import DEFAULT_PATCH

    dev = torch.device(device)
    network = load_weights_file(weights).to(dev).eval()
    volume = pixels.transpose(2, 1, 0).astype(np.float32)  # (column, row, slice) like curation
    window = segment(network, volume, patch=DEFAULT_PATCH, device=dev).compute_s
    image = torch.as_tensor((volume - volume.mean()) / volume.std())[None, None].to(dev)
    started = time.perf_counter()
    with torch.no_grad():
        sliding_window_inference(image, DEFAULT_PATCH, 64, network, overlap=OVERLAP)
    return {"window": window, "naive": time.perf_counter() - started}


def train_weights(path: Path, epochs: int) -> None:
    """A seg3d model trained briefly on toy volumes (realistic masks, same compute as any seg3d)."""
    import torch

    from site_node.training.local import train_site
    from site_node.training.toy_data import write_toy_curated

    torch.manual_seed(0)  # the same weights, hence the same masks, in every run of the bench
    with tempfile.TemporaryDirectory() as tmp:
        curated = write_toy_curated(Path(tmp), patients=6, seed=1)
        model = train_site(curated, epochs=epochs, device="cpu")["model"]
    torch.save(model.state_dict(), path)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument(
        "--quiet", type=float, default=20.0, help="listener quiet period (s; site default 20)"
    )
    parser.add_argument("--grace", type=float, default=2.0, help="release grace (s; site default 2)")
    parser.add_argument(
        "--no-release", action="store_true", help="complete studies by the quiet period only (no release)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-epochs", type=int, default=6)
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive-window peer")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("SITE_NODE_DEBUG", "0")

    from site_node.inference.route import register_model_action
    from site_node.models.tables import inference_run
    from site_node.pacs.listen import Listener

    with tempfile.TemporaryDirectory(prefix="infer-bench-") as tmp:
        root = Path(tmp)
        weights = root / "seg3d.pt"
        train_weights(weights, args.train_epochs)
        pixels = phantom(args.slices)
        with Orthanc(root / "orthanc") as orthanc:
            site = make_site(root, orthanc, args.quiet, args.grace, not args.no_release, weights)
            register_model_action(site)
            listener = Listener(
                site, "SITENODE", 0, args.quiet, "127.0.0.1"
            ).start()  # settings from site.toml
            worker = threading.Thread(target=listener.run_forever, kwargs={"tick": 0.5}, daemon=True)
            worker.start()
            rows = []
            started = time.time()
            try:
                for i in range(args.studies):
                    datasets = study_datasets(pixels, i)
                    sent_at = send(datasets, listener.port)
                    stored_at = wait_results(orthanc, str(datasets[0].StudyInstanceUID))
                    rows.append(stored_at - sent_at)
                    print(f"study {i + 1}/{args.studies}: {rows[-1]:.1f} s", file=sys.stderr)
            finally:
                listener.stop()
            wall = time.time() - started
            with site.engine.connect() as conn:
                runs = conn.execute(inference_run.select().where(inference_run.c.status == "completed")).all()
        peer = peer_compute(pixels, weights, args.device)
        if args.skip_naive:
            peer["naive"] = float("nan")
    compute = [r.compute_s for r in runs]
    node = [r.total_s for r in runs]
    before = [r.latency_s - r.total_s for r in runs]
    besides = [r.total_s - r.compute_s for r in runs]
    after = [lat - r.latency_s for lat, r in zip(rows, runs, strict=False)]
    share = [c / lat for c, lat in zip(compute, rows, strict=False)]
    load = os.getloadavg()
    figures = {
        "studies": args.studies,
        "slices": args.slices,
        "device": args.device,
        "quiet_period_s": args.quiet,
        "release_grace_s": args.grace,
        "complete_on_release": not args.no_release,
        "before_run_p50_s": pct(before, 0.5),
        "besides_compute_p50_s": pct(besides, 0.5),
        "after_node_p50_s": pct(after, 0.5),
        "latency_p50_s": pct(rows, 0.5),
        "latency_p95_s": pct(rows, 0.95),
        "latency_mean_s": statistics.mean(rows),
        "node_p50_s": pct(node, 0.5),
        "compute_p50_s": pct(compute, 0.5),
        "compute_share_p50": pct(share, 0.5),
        "compute_share_of_node_p50": pct([c / n for c, n in zip(compute, node, strict=False)], 0.5),
        "throughput_studies_per_h": 3600 * args.studies / wall,
        "peer_compute_window_s": peer["window"],
        "peer_compute_naive_s": peer["naive"],
        "load_average": load,
    }
    print(f"\nseg3d on {args.studies} CT studies of {args.slices} x 512 x 512, {args.device}, ", end="")
    completion = "no release completion" if args.no_release else f"release grace {args.grace:g} s"
    print(f"quiet period {args.quiet:g} s, {completion}")
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine)\n")
    print("| measure | p50 | p95 | mean |")
    print("|---|---|---|---|")
    for label, values in (
        ("latency: last C-STORE -> SEG+SR in Orthanc (s)", rows),
        ("node: study complete -> results stored (s)", node),
        ("model compute, sliding window (s)", compute),
        ("  before the run: completion noticed, files read, volume assembled (s)", before),
        ("  node besides compute: pre-processing, lesions, SEG + SR, C-STORE (s)", besides),
        ("  after the node: Orthanc indexing, bench polling (s)", after),
    ):
        print(
            f"| {label} | {pct(values, 0.5):.1f} | {pct(values, 0.95):.1f} | {statistics.mean(values):.1f} |"
        )
    phase_names = sorted({k for r in runs for k in (r.outputs or {}).get("phases_s", {})})
    for name in phase_names:
        values = [(r.outputs or {}).get("phases_s", {}).get(name, 0.0) for r in runs]
        figures[f"phase_{name}_p50_s"] = pct(values, 0.5)
        p50, p95, mean = pct(values, 0.5), pct(values, 0.95), statistics.mean(values)
        print(f"| phase {name} (s) | {p50:.2f} | {p95:.2f} | {mean:.2f} |")
    lesions = [(r.outputs or {}).get("lesions", 0) for r in runs]
    print(
        f"| lesions per study | {pct(lesions, 0.5)} | {pct(lesions, 0.95)} | {statistics.mean(lesions):.1f} |"
    )
    print(f"| compute share of the latency | {pct(share, 0.5):.0%} | | |")
    print(f"| compute share of the node's processing | {figures['compute_share_of_node_p50']:.0%} | | |")
    print(f"| throughput (studies/h, one at a time) | {figures['throughput_studies_per_h']:.0f} | | |")
    print(f"| peer: forward passes alone, inference window (s) | {peer['window']:.1f} | | |")
    print(f"| peer: forward passes alone, training patch as window (s) | {peer['naive']:.1f} | | |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
