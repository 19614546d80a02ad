"""Readiness gate: a site whose curated set fails its checks refuses training jobs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConflictError

MIN_TRAINING = 1
MIN_VALIDATION = 1


@dataclass
class Readiness:
    """Whether a curated set can be trained on, and why not."""

    ready: bool
    training: int = 0
    validation: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "ready": self.ready,
            "training": self.training,
            "validation": self.validation,
            "problems": self.problems,
        }


def check_readiness(curated: Path) -> Readiness:
    """Check the curated set in ``curated`` (``<home>/curated``) without raising."""
    datalist_path = curated / "datalist.json"
    if not datalist_path.exists():
        return Readiness(False, problems=["no curated set: run 'site-node curate'"])
    datalist = json.loads(datalist_path.read_text())
    n_train, n_val = len(datalist.get("training", [])), len(datalist.get("validation", []))
    problems = []
    if n_train + n_val == 0:
        problems.append("zero labelled series in the curated set")
    elif n_train < MIN_TRAINING:
        problems.append("no training series")
    elif n_val < MIN_VALIDATION:
        problems.append("no validation series (needs labelled series from at least two patients)")
    return Readiness(not problems, n_train, n_val, problems)


def require_ready(curated: Path, site_id: str) -> Readiness:
    """Raise when the site's curated set is not ready for training.

    Raises:
        ConflictError: the message names the site and the failed checks.
    """
    readiness = check_readiness(curated)
    if not readiness.ready:
        raise ConflictError(
            f"site {site_id} refuses training: " + "; ".join(readiness.problems), field="curated"
        )
    return readiness


def dataset_version(curated: Path) -> str | None:
    """The curated set's version: SHA-256 of its ``datalist.json`` (None when there is none).

    The datalist names pseudonymized patients and file paths only; its hash says which set a model
    was trained or scored on without revealing any of it. It travels with every job result.
    """
    path = curated / "datalist.json"
    if not path.is_file():
        return None
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
