"""Reading what a job's server recorded (per-site metrics, refusals) and drawing the report plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METRICS_FILE = "fedimaging_metrics.json"
CROSS_SITE_FILE = "cross_val_results.json"
STATISTICS_FILE = "fedstats.json"
MODEL_FILES = ("FL_global_model.pt", "best_FL_global_model.pt")


@dataclass
class JobProgress:
    """Per-site metrics by round, refusals and cross-site results found in a job workspace."""

    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)
    cross_site: dict[str, Any] = field(default_factory=dict)
    statistics: dict[str, Any] = field(default_factory=dict)
    #: site -> curated-set version (hash of its datalist) the site last reported.
    dataset_versions: dict[str, str] = field(default_factory=dict)
    #: site -> metrics of its ``validate`` answer (evaluation jobs).
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def last_round(self) -> int | None:
        """The highest round any site reported (0-based), None before the first."""
        rounds = [r["round"] for entries in self.rounds.values() for r in entries]
        return max(rounds) if rounds else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the metrics part of the report)."""
        return {
            "rounds": self.rounds,
            "refusals": self.refusals,
            "cross_site": self.cross_site,
            "statistics": self.statistics,
            "dataset_versions": self.dataset_versions,
            "evaluations": self.evaluations,
            "last_round": self.last_round,
        }


def _find(root: Path, name: str) -> Path | None:
    found = sorted(root.rglob(name)) if root.exists() else []
    return found[0] if found else None


def read_progress(workspace: Path) -> JobProgress:
    """Collect the server's metric records and cross-site results under ``workspace``."""
    progress = JobProgress()
    metrics = _find(workspace, METRICS_FILE)
    records = json.loads(metrics.read_text()) if metrics else []
    for rec in records:
        site = str(rec.get("site"))
        if rec.get("dataset_version"):
            progress.dataset_versions[site] = str(rec["dataset_version"])
        if rec.get("refused"):
            progress.refusals[site] = str(rec["refused"])
        elif rec.get("task") == "validate" and rec.get("metrics"):
            progress.evaluations[site] = {
                **rec["metrics"],
                "n_cases": rec.get("n_cases"),
                "dataset_version": rec.get("dataset_version"),
            }
        elif rec.get("task") == "train" and isinstance(rec.get("round"), int):
            entry = {"round": rec["round"], **rec.get("metrics", {})}
            for key in ("device", "train_s", "val_s", "n_train"):
                if rec.get(key) is not None:
                    entry[key] = rec[key]
            progress.rounds.setdefault(site, []).append(entry)
    for entries in progress.rounds.values():
        entries.sort(key=lambda e: e["round"])
    cross = _find(workspace, CROSS_SITE_FILE)
    if cross:
        progress.cross_site = json.loads(cross.read_text())
    stats = _find(workspace, STATISTICS_FILE)
    if stats:
        progress.statistics = json.loads(stats.read_text())
    return progress


def find_model(workspace: Path) -> Path | None:
    """The final global model file the server persisted (best model as a fallback)."""
    for name in MODEL_FILES:
        path = _find(workspace, name)
        if path is not None and "cross_site_val" not in path.parts:
            return path
    return None


def write_report_png(progress: JobProgress, path: Path, title: str) -> Path:
    """Plot validation Dice of the received global model per round, one line per site."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for site, entries in sorted(progress.rounds.items()):
        points = [(e["round"], e["val_dice"]) for e in entries if "val_dice" in e]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=site)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
    ax.set_xlabel("round (global model received, from 0)")
    ax.set_ylabel("validation Dice")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    if progress.rounds:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
