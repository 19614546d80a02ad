"""The site's NVFlare statistics generator for the fedstats job.

Datasets (each reported only when it has at least the site's floor ``floor_k`` records, so a small
set never appears at all):

- ``curated``: one record per curated series: ``lesion_volume_ml``, ``mean_hu`` (image mean),
  ``lesion_mean_hu``;
- ``omop``: one record per OMOP person: ``age`` (years, from ``year_of_birth``).

The job's own cleansers (min_count, noise on min/max, histogram bin limits) apply on top.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.statistics_spec import (
    Bin,
    DataType,
    Feature,
    Histogram,
    HistogramType,
    Statistics,
)

from common.config import SiteSettings, load_site_settings
from common.errors import PermissionDeniedError
from site_node.training.approval import check_approved, identify_job
from site_node.training.job_policy import check_job_policy, clear_refusal, note_refusal, observed_params
from site_node.training.site import resolve_site_home

log = logging.getLogger(__name__)


def curated_features(curated: Path) -> dict[str, list[float]]:
    """Per-series values from the curated set (training and validation alike)."""
    import nibabel as nib

    values: dict[str, list[float]] = {"lesion_volume_ml": [], "mean_hu": [], "lesion_mean_hu": []}
    path = curated / "datalist.json"
    if not path.exists():
        return values
    datalist = json.loads(path.read_text())
    for entry in datalist.get("training", []) + datalist.get("validation", []):
        image = nib.load(curated / entry["image"])
        label = np.asarray(nib.load(curated / entry["label"]).dataobj) > 0
        pixels = np.asarray(image.dataobj, dtype=np.float32)
        voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
        values["lesion_volume_ml"].append(float(label.sum()) * voxel_ml)
        values["mean_hu"].append(float(pixels.mean()))
        if label.any():
            values["lesion_mean_hu"].append(float(pixels[label].mean()))
    return values


def omop_ages(settings: SiteSettings) -> list[float]:
    """Ages (years) of the OMOP persons in the site database; empty when there is no OMOP data."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from site_node.db import get_engine

    year = dt.date.today().year
    try:
        with get_engine(settings.database_url).connect() as conn:
            rows = conn.execute(text("SELECT year_of_birth FROM person WHERE year_of_birth IS NOT NULL"))
            return [float(year - int(r[0])) for r in rows]
    except SQLAlchemyError:
        return []


class SiteStatistics(Statistics):
    """Statistics over the bound site's curated set and OMOP persons, floored at ``floor_k``."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, dict[str, list[float]]] = {}
        self.settings: SiteSettings | None = None
        self.job_id = ""

    def initialize(self, fl_ctx: FLContext) -> None:
        """Bind to the site, check the job (approval, the site's job policy), compute the values.

        A refused job is not an error here: the client stays up, reports no dataset, and the site's
        result filter answers the task with the refusal, so the server (and the researcher) hear it
        instead of waiting for a client that stopped.
        """
        settings = load_site_settings(resolve_site_home(fl_ctx.get_identity_name()))
        self.settings, self.job_id, self.data = settings, str(fl_ctx.get_job_id()), {}
        clear_refusal(self.job_id)
        custom = Path(fl_ctx.get_engine().get_workspace().get_app_custom_dir(fl_ctx.get_job_id()))
        try:
            job = identify_job(custom)
            check_approved(settings, job)
            check_job_policy(settings, job.template, observed_params(custom, job.template))
        except PermissionDeniedError as exc:
            log.warning("%s", exc.public_message)
            note_refusal(self.job_id, exc.public_message)
            return
        raw = {"curated": curated_features(settings.home / "curated"), "omop": {"age": omop_ages(settings)}}
        floor = settings.floor_k
        self.data = {}
        for dataset, features in raw.items():
            kept = {name: vals for name, vals in features.items() if len(vals) >= floor}
            if kept:
                self.data[dataset] = kept
        log.info("statistics datasets: %s (floor %d)", sorted(self.data), floor)

    def features(self) -> dict[str, list[Feature]]:
        """Every dataset's numeric features."""
        return {ds: [Feature(name, DataType.FLOAT) for name in feats] for ds, feats in self.data.items()}

    def _values(self, dataset: str, feature: str) -> np.ndarray:
        return np.asarray(self.data[dataset][feature], dtype=np.float64)

    def count(self, dataset_name: str, feature_name: str) -> int:
        """Number of records."""
        return int(self._values(dataset_name, feature_name).size)

    def sum(self, dataset_name: str, feature_name: str) -> float:
        """Sum of the values."""
        return float(self._values(dataset_name, feature_name).sum())

    def mean(self, dataset_name: str, feature_name: str) -> float:
        """Mean of the values."""
        return float(self._values(dataset_name, feature_name).mean())

    def stddev(self, dataset_name: str, feature_name: str) -> float:
        """Standard deviation of the values."""
        return float(self._values(dataset_name, feature_name).std())

    def variance_with_mean(
        self, dataset_name: str, feature_name: str, global_mean: float, global_count: float
    ) -> float:
        """Sum of squared deviations from the global mean, over the global count."""
        values = self._values(dataset_name, feature_name)
        return float(((values - global_mean) ** 2).sum() / global_count)

    def max_value(self, dataset_name: str, feature_name: str) -> float:
        """Largest value (noise is added by the job's cleanser)."""
        return float(self._values(dataset_name, feature_name).max())

    def min_value(self, dataset_name: str, feature_name: str) -> float:
        """Smallest value (noise is added by the job's cleanser)."""
        return float(self._values(dataset_name, feature_name).min())

    def histogram(
        self,
        dataset_name: str,
        feature_name: str,
        num_of_bins: int,
        global_min_value: float,
        global_max_value: float,
    ) -> Histogram:
        """Equal-width histogram over the global range; more bins than the site allows: refused.

        The refusal is noted for the site's result filter, which sends it instead of the statistics.
        """
        if self.settings is not None:
            try:
                check_job_policy(self.settings, "fedstats", {"bins": num_of_bins})
            except PermissionDeniedError as exc:
                note_refusal(self.job_id, exc.public_message)
                return Histogram(HistogramType.STANDARD, [])
        counts, edges = np.histogram(
            self._values(dataset_name, feature_name),
            bins=num_of_bins,
            range=(global_min_value, global_max_value),
        )
        bins = [Bin(float(edges[i]), float(edges[i + 1]), float(c)) for i, c in enumerate(counts)]
        return Histogram(HistogramType.STANDARD, bins)
