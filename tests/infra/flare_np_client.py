"""Tiny NVFlare Client API script (adds 1 to every weight): the deployment test's *unapproved* job.

A researcher submits it directly with their admin kit, bypassing the hub; it is no template any site
approved, so each site's privacy filter must refuse its results.
"""

from __future__ import annotations

import numpy as np
import nvflare.client as flare


def main() -> None:
    """Answer every task with the received weights plus one."""
    flare.init()
    while flare.is_running():
        received = flare.receive()
        if received is None:
            break
        params = {key: np.asarray(value) + 1.0 for key, value in (received.params or {}).items()}
        flare.send(
            flare.FLModel(
                params=params,
                metrics={"accuracy": float(received.current_round or 0)},
                meta={"NUM_STEPS_CURRENT_ROUND": 1},
            )
        )


if __name__ == "__main__":
    main()
