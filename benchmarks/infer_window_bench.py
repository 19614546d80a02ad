"""Sliding-window setting for clinical inference: lesion Dice and compute time, per setting, paired.

Trains a seg3d model briefly on toy volumes (``site_node.training.toy_data``), then for each window
setting (window in training patches, windows per forward pass, overlap) scores lesion Dice on held-out
toy volumes against the generator's own labels and times the forward passes on a 512 x 512 x N
CT-like volume. Settings run interleaved (``--repeats`` rounds), so the machine's load hits them alike.

Usage: ``python benchmarks/infer_window_bench.py [--epochs 6] [--held-out 4] [--slices 64] [--repeats 2]``.
The machine is shared: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: (name, window scale in training patches, sw_batch_size, overlap)
SETTINGS = (
    ("256x256x64 (8x8x4 patches), batch 1", (8, 8, 4), 1, 0.125),
    ("128x128x64 (4x4x4 patches), batch 1", (4, 4, 4), 1, 0.125),
    ("128x128x64 (4x4x4 patches), batch 4", (4, 4, 4), 4, 0.125),
    ("64x64x32 (2x2x2 patches), batch 16", (2, 2, 2), 16, 0.125),
    ("32x32x16 (training patch), batch 64", (1, 1, 1), 64, 0.125),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--held-out", type=int, default=4)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from benchmarks.infer_bench import phantom
    from site_node.inference.evaluate import dice
    from site_node.inference.predict import segment
    from site_node.training.data import DEFAULT_PATCH
    from site_node.training.local import train_site
    from site_node.training.toy_data import toy_volume, write_toy_curated

    torch.set_num_threads(os.cpu_count() or 1)
    dev = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        curated = write_toy_curated(Path(tmp), patients=6, seed=1)
        model = train_site(curated, epochs=args.epochs, device="cpu")["model"].to(dev).eval()
    rng = np.random.default_rng(12345)
    held = [toy_volume(rng, (96, 96, 48), "a") for _ in range(args.held_out)]
    volume = phantom(args.slices).transpose(2, 1, 0).astype(np.float32)
    load_before = os.getloadavg()
    dices: dict[str, list[float]] = {name: [] for name, *_ in SETTINGS}
    times: dict[str, list[float]] = {name: [] for name, *_ in SETTINGS}
    for name, scale, batch, overlap in SETTINGS:
        kw = {"sw_batch_size": batch, "scale": scale, "overlap": overlap}
        for image, label in held:
            dices[name].append(dice(segment(model, image, patch=DEFAULT_PATCH, device=dev, **kw).mask, label))
    for _ in range(args.repeats):
        for name, scale, batch, overlap in SETTINGS:
            kw = {"sw_batch_size": batch, "scale": scale, "overlap": overlap}
            started = time.perf_counter()
            segment(model, volume, patch=DEFAULT_PATCH, device=dev, **kw)
            times[name].append(time.perf_counter() - started)
    load_after = os.getloadavg()
    print(
        f"\nseg3d trained {args.epochs} epochs; Dice on {args.held_out} held-out 96x96x48 toy volumes; "
        f"time on one 512x512x{args.slices} volume, {args.repeats} interleaved runs, "
        f"{torch.get_num_threads()} torch threads, CPU"
    )
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (shared machine)\n")
    print("| setting | lesion Dice mean (min-max) | compute s (each run) |")
    print("|---|---|---|")
    for name, *_ in SETTINGS:
        d, t = dices[name], times[name]
        print(
            f"| {name} | {statistics.mean(d):.3f} ({min(d):.3f}-{max(d):.3f}) | "
            + ", ".join(f"{x:.1f}" for x in t)
            + " |"
        )


if __name__ == "__main__":
    main()
