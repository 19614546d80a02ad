"""Federated vs centralized vs single-site lesion segmentation, and NVFlare's share of round time.

Builds synthetic hospitals a/b/c (non-IID styles) through the real pipeline (synth -> deid -> curate),
then on the pooled validation set of all three compares:

1. seg3d FedAvg in the NVFlare simulator (rounds x local epochs),
2. a centralized model trained on the pooled curated training data for the same total epochs,
3. each site's model trained on its own data alone for the same epochs;

and splits the federated wall time per round into local work (training + validation, the slowest
site) and everything else (NVFlare: model transfer, aggregation, filters, scheduling).

Every arm uses the same Adam learning rate and schedule per epoch (default: 0.01, cosine decay over
the whole run; a federated client follows the curve over rounds x local epochs).

    python benchmarks/fl_bench.py [--patients 36] [--rounds 24] [--local-epochs 1] [--lr 0.01]
        [--lr-schedule cosine] [--seed 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STYLES = ("a", "b", "c")


def build_sites(out: Path, patients: int, seed: int) -> dict[str, Path]:
    """One site home per style with a curated set and seg3d approved."""
    from site_node.curation import curate_site
    from site_node.deid.runner import run_deid
    from site_node.home import init_home, open_site
    from site_node.synthetic import generate_site
    from site_node.training.approval import approve_template

    homes = {}
    for i, style in enumerate(STYLES):
        name = f"site-{style}"
        generate_site(out / f"src-{style}", patients, seed + i, style)
        home = out / name
        init_home(home, name)
        ctx = open_site(home)
        run_deid(ctx, out / f"src-{style}" / "dicom")
        counts = curate_site(ctx).counts
        print(f"{name}: {counts['training']} training / {counts['validation']} validation series")
        approve_template(home, "seg3d", REPO / "jobs" / "seg3d")
        homes[name] = home
    return homes


def pool(homes: dict[str, Path], out: Path) -> Path:
    """A pooled curated set (benchmark only: real sites never pool data)."""
    pooled = out / "pooled" / "curated"
    (pooled / "images").mkdir(parents=True)
    (pooled / "labels").mkdir(parents=True)
    datalist: dict[str, list[dict[str, str]]] = {"training": [], "validation": []}
    for name, home in homes.items():
        site_list = json.loads((home / "curated" / "datalist.json").read_text())
        for split, entries in site_list.items():
            for i, entry in enumerate(entries):
                item = {}
                for key in ("image", "label"):
                    rel = f"{key}s/{name}-{split}-{i}.nii.gz"
                    shutil.copyfile(home / "curated" / entry[key], pooled / rel)
                    item[key] = rel
                datalist[split].append(item)
    (pooled / "datalist.json").write_text(json.dumps(datalist))
    return pooled


def run_federated(
    homes: dict[str, Path], out: Path, rounds: int, epochs: int, optim: dict[str, object]
) -> tuple[Path, float]:
    """Run seg3d in the simulator; return its workspace and wall time."""
    workspace = out / "fl-workspace"
    env = dict(os.environ, HOME=str(out / "nvflare-home"), PYTHONPATH=str(REPO))
    (out / "nvflare-home").mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        str(REPO / "jobs" / "seg3d" / "job.py"),
        "--workspace",
        str(workspace),
        "--param",
        f"rounds={rounds}",
        "--param",
        f"local_epochs={epochs}",
        "--param",
        "cross_site_eval=false",
    ]
    for key, value in optim.items():
        cmd += ["--param", f"{key}={json.dumps(value)}"]
    for name, home in homes.items():
        cmd += ["--site", f"{name}={home}"]
    started = time.perf_counter()
    with open(out / "fl.log", "wb") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return workspace, time.perf_counter() - started


def round_timing(workspace: Path) -> tuple[float, float]:
    """Mean wall time per round and mean local work per round (rounds after the first)."""
    records = json.loads(next(workspace.rglob("fedimaging_metrics.json")).read_text())
    train = [r for r in records if r.get("task") == "train" and isinstance(r.get("round"), int)]
    ends: dict[int, float] = {}
    local: dict[int, float] = {}
    for r in train:
        ends[r["round"]] = max(ends.get(r["round"], 0.0), r["time"])
        local[r["round"]] = max(local.get(r["round"], 0.0), r.get("train_s", 0.0) + r.get("val_s", 0.0))
    rounds = sorted(ends)[1:]
    walls = [ends[r] - ends[r - 1] for r in rounds]
    return statistics.mean(walls), statistics.mean(local[r] for r in rounds)


def evaluate_checkpoint(path: Path, pooled: Path) -> float:
    """Dice of a saved global model on the pooled validation set."""
    import torch

    from site_node.training.data import DEFAULT_PATCH, make_loaders
    from site_node.training.engine import evaluate
    from site_node.training.model import SegUNet

    model = SegUNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model"])
    _, val, _ = make_loaders(pooled)
    return evaluate(model, val, device=torch.device("cpu"), patch=DEFAULT_PATCH)


def train_and_score(curated: Path, pooled: Path, epochs: int, lr: float, lr_schedule: str) -> float:
    """Train on ``curated`` alone (same optimizer, lr and schedule as the clients); pooled-set Dice."""
    import torch

    from site_node.training.data import DEFAULT_PATCH, make_loaders
    from site_node.training.engine import evaluate
    from site_node.training.local import train_site

    model = train_site(curated, epochs=epochs, lr=lr, lr_schedule=lr_schedule, device="cpu")["model"]
    _, val, _ = make_loaders(pooled)
    return evaluate(model, val, device=torch.device("cpu"), patch=DEFAULT_PATCH)


def main() -> None:
    """Run the three arms and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # NVFlare costs ~2.5 s a round whatever the work (simulator and Client API polling): with 12
    # patients a site one local epoch is ~3.6 s on an idle 2-core CPU and that fixed cost is 41 % of a
    # round; 36 patients a site (~35 training series) is still a small hospital (docs/federated-training.md)
    parser.add_argument("--patients", type=int, default=36, help="patients per synthetic site")
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--aggregation", choices=["fedavg", "fedprox", "fedopt"], default="fedavg")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate of every arm")
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fl-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    total = args.rounds * args.local_epochs

    homes = build_sites(out, args.patients, args.seed)
    pooled = pool(homes, out)
    optim = {"aggregation": args.aggregation, "lr": args.lr, "lr_schedule": args.lr_schedule}
    workspace, fl_wall = run_federated(homes, out, args.rounds, args.local_epochs, optim)
    model_path = next(p for p in workspace.rglob("FL_global_model.pt") if "cross_site_val" not in p.parts)
    label = {"fedavg": "FedAvg", "fedprox": "FedProx", "fedopt": "FedOpt"}[args.aggregation]
    rows = [(f"federated {label} (NVFlare simulator)", evaluate_checkpoint(model_path, pooled))]
    same = (total, args.lr, args.lr_schedule)
    rows.append(("centralized (pooled data)", train_and_score(pooled, pooled, *same)))
    for name, home in homes.items():
        rows.append((f"{name} alone", train_and_score(home / "curated", pooled, *same)))
    wall, local = round_timing(workspace)

    print(
        f"\nfl_bench: 3 synthetic sites x {args.patients} patients, {args.rounds} rounds x "
        f"{args.local_epochs} local epochs ({total} epochs for every arm), Adam lr {args.lr:g} "
        f"{args.lr_schedule}, Dice on the pooled validation set"
    )
    print(f"{'model':<40} {'Dice':>7}")
    for name, dice in rows:
        print(f"{name:<40} {dice:7.3f}")
    fed, central = rows[0][1], rows[1][1]
    best_single = max(d for _, d in rows[2:])
    print(f"{'federated - centralized':<40} {fed - central:+7.3f}   (target >= -0.03)")
    print(f"{'federated - best single site':<40} {fed - best_single:+7.3f}   (target > 0)")
    overhead = wall - local
    print(
        f"\nround wall time {wall:.1f} s = local training+validation {local:.1f} s + NVFlare/other "
        f"{overhead:.1f} s ({100 * overhead / wall:.0f}% of the round; target < 25%); "
        f"whole simulator run {fl_wall:.0f} s"
    )
    print(f"work folder: {out}")


if __name__ == "__main__":
    main()
