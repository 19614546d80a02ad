"""seg3d client: the thin NVFlare Client API script each site runs (logic in site_node.training)."""

import argparse
from pathlib import Path

from site_node.training.client_loop import ClientConfig, run_client


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    """Parse the job's arguments and run the Client API loop."""
    parser = argparse.ArgumentParser(description="seg3d federated client")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patch", type=_ints, default=(32, 32, 16))
    parser.add_argument("--channels", type=_ints, default=(8, 16, 32))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    args = parser.parse_args()
    config = ClientConfig(
        epochs=args.epochs,
        lr=args.lr,
        patch=args.patch,
        channels=args.channels,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        lr_schedule=args.lr_schedule,
    )
    run_client(config, Path(__file__).resolve().parent)


if __name__ == "__main__":
    main()
