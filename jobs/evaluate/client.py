"""evaluate client: the thin NVFlare Client API script each site runs (logic in site_node.inference)."""

import argparse
from pathlib import Path

from site_node.inference.eval_client import run_eval_client


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    """Parse the job's arguments and answer the evaluation task."""
    parser = argparse.ArgumentParser(description="evaluate: score a registry model on the site's curated set")
    parser.add_argument("--channels", type=_ints, default=(8, 16, 32))
    parser.add_argument("--patch", type=_ints, default=(32, 32, 16))
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    args = parser.parse_args()
    run_eval_client(args.channels, args.patch, args.device, Path(__file__).resolve().parent)


if __name__ == "__main__":
    main()
