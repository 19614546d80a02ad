"""``make demo``: run the whole platform locally on its embedded defaults.

Usage: ``python -m infra.demo [--sites 3] [--patients 12] [--rounds 3] [--workdir demo-output]``.
Exits non-zero when any step fails, after stopping every process it started.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from infra.demo import steps
from infra.demo.runner import Demo, DemoError, console


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the demo."""
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument(
        "--sites", type=int, default=3, help="number of synthetic hospitals (styles a, b, c cycle)"
    )
    parser.add_argument("--patients", type=int, default=12, help="patients per hospital")
    parser.add_argument("--rounds", type=int, default=3, help="federated training rounds")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"), help="scratch folder (replaced)")
    parser.add_argument(
        "--keep", action="store_true", help="keep an existing workdir instead of replacing it"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every demo step in order; return the process exit status."""
    args = parse_args(argv)
    if args.sites < 1 or args.patients < 1 or args.rounds < 1:
        console.print("[red]--sites, --patients and --rounds must be at least 1")
        return 2
    workdir = args.workdir.resolve()
    if workdir.exists() and not args.keep:
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    names = [f"hospital-{chr(ord('a') + i)}" if i < 26 else f"hospital-{i}" for i in range(args.sites)]
    demo = Demo(workdir=workdir, sites=names, patients=args.patients, rounds=args.rounds, seed=args.seed)
    started = time.perf_counter()
    try:
        for title, func in steps.plan(demo):
            demo.step(title, func)
    except (DemoError, Exception) as exc:  # any failure: report it and exit non-zero
        console.print(f"\n[bold red]demo failed:[/bold red] {exc}")
        return 1
    finally:
        demo.stop_all()
    steps.print_timings(demo, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
