"""The metrics plot of a model version: each site's validation Dice per round and its evaluations."""

from __future__ import annotations

import io
from typing import Any


def metrics_png(card: dict[str, Any]) -> bytes:
    """PNG: validation Dice of the global model per round, one line per training site, plus
    each evaluating site's Dice as a point after the last round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    last = 0
    for site, metrics in sorted(card.get("site_metrics", {}).items()):
        values = [v for v in metrics.get("val_dice_by_round", []) if v is not None]
        if values:
            ax.plot(range(len(values)), values, marker="o", label=f"{site} (training)")
            last = max(last, len(values))
    for row in card.get("evaluations", []):
        dice = row.get("metrics", {}).get("dice")
        if isinstance(dice, int | float):
            ax.scatter([last], [dice], marker="s", label=f"{row['site']} (evaluation)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.set_title(f"{card['name']} v{card['version']}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
