"""Run a stored model on one study and hand the results (SEG, SR, overlay) to a sink.

The sink writes files (``--input/--out``) or stores them into the PACS study (``--pacs``, routes).
Each run is recorded in ``inference_run`` under the study's pseudonym with its latency: from the
last instance received (or the run's start) to the results stored.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from sqlalchemy import insert

from common.errors import PlatformError
from site_node.db import utcnow
from site_node.home import SiteContext
from site_node.inference.study import ImageStudy, read_study_folder
from site_node.models.store import StoredModel, resolve_verified
from site_node.models.tables import inference_run
from site_node.pacs.routes import StudyChanged

log = logging.getLogger(__name__)

Sink = Callable[[list[tuple[str, pydicom.Dataset]]], None]


@dataclass
class InferenceResult:
    """What one inference did (no identifier: the study appears by its pseudonym)."""

    model: str
    study: str
    device: str
    lesions: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    compute_s: float = 0.0
    total_s: float = 0.0
    latency_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the run

    @property
    def compute_share(self) -> float:
        """Model compute as a fraction of the latency."""
        return self.compute_s / self.latency_s if self.latency_s else 0.0

    def public(self) -> dict[str, Any]:
        """JSON view for ``--json``."""
        return {
            "model": self.model,
            "study": self.study,
            "device": self.device,
            "lesions": self.lesions,
            "outputs": self.outputs,
            "compute_s": round(self.compute_s, 3),
            "total_s": round(self.total_s, 3),
            "latency_s": round(self.latency_s, 3),
            "compute_share": round(self.compute_share, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
        }


def warm_up() -> None:
    """Import the deep-learning and DICOM-writing stack once, outside any latency measurement."""
    import highdicom  # noqa: F401

    import site_node.inference.network  # noqa: F401
    import site_node.inference.predict  # noqa: F401


def _predict(stored: StoredModel, study: ImageStudy, device: str | None, phases: dict[str, float]) -> Any:
    from site_node.inference.network import load_network, patch_of
    from site_node.inference.predict import segment
    from site_node.training.device import select_device

    started = time.perf_counter()
    dev = select_device(device)
    network = load_network(stored, dev)
    phases["load_model"] = time.perf_counter() - started
    prediction = segment(network, study.volume.array, patch=patch_of(stored), device=dev)
    phases.update(prepare=prediction.prepare_s, compute=prediction.compute_s, decide=prediction.decide_s)
    return prediction


def build_results(
    ctx: SiteContext,
    stored: StoredModel,
    study: ImageStudy,
    mask: np.ndarray,
    overlay: bool,
    phases: dict[str, float] | None = None,
) -> tuple[list[tuple[str, pydicom.Dataset]], list[dict[str, Any]]]:
    """The result objects (kind, dataset) and the lesions (number, volume) of a prediction."""
    from site_node.inference.dicom_seg import build_seg, split_lesions
    from site_node.inference.dicom_sr import build_sr

    phases = {} if phases is None else phases
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = now - mark
        mark = now

    voxel_ml = float(np.prod(study.volume.spacing)) / 1000.0
    labels, lesions = split_lesions(mask, voxel_ml)
    lap("lesions")
    site_id = ctx.settings.site_id
    seg = build_seg(study, labels, lesions, stored.name, stored.version, site_id)
    lap("seg")
    results: list[tuple[str, pydicom.Dataset]] = [("seg", seg)]
    results.append(("sr", build_sr(study, seg, lesions, stored.name, stored.version, site_id)))
    lap("sr")
    if overlay:
        from site_node.inference.overlay import build_overlay

        results.append(("overlay", build_overlay(study, labels, stored.name, stored.version)))
        lap("overlay")
    return results, [{"segment": x.number, "volume_ml": x.volume_ml} for x in lesions]


def _record(ctx: SiteContext, stored: StoredModel, study_ps: str, trigger: str, **values: Any) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(inference_run).values(
                model_name=stored.name,
                model_version=stored.version,
                study_pseudonym=study_ps,
                trigger=trigger,
                **values,
            )
        )


def infer_study(
    ctx: SiteContext,
    stored: StoredModel,
    study: ImageStudy,
    sink: Sink,
    *,
    trigger: str,
    overlay: bool = False,
    received_at: float | None = None,
    device: str | None = None,
    phases: dict[str, float] | None = None,
) -> InferenceResult:
    """Segment ``study`` with ``stored``, build SEG + SR (+ overlay), pass them to ``sink``, record it.

    Args:
        ctx: the site.
        stored: a verified stored model (see :func:`~site_node.models.store.resolve_verified`).
        study: the study's image series.
        sink: stores the results (files, or the PACS); raising marks the run failed.
        trigger: ``folder``, ``pacs`` or ``route``.
        overlay: also write a Secondary Capture overlay.
        received_at: ``time.time()`` when the study's last instance arrived (latency start);
            the run's start when None.
        device: ``cpu`` or ``cuda`` (default: CUDA when present).
        phases: seconds of steps taken before (reading, assembling), recorded with the run's own.
    """
    warm_up()
    started_wall, started = time.time(), time.perf_counter()
    study_ps = ctx.pseudonymizer().pseudonym("study", study.study_uid)
    phases = dict(phases or {})
    try:
        prediction = _predict(stored, study, device, phases)
        compute_s, dev = prediction.compute_s, prediction.device
        results, lesions = build_results(ctx, stored, study, prediction.mask, overlay, phases)
        stored_from = time.perf_counter()
        sink(results)
        phases["store"] = time.perf_counter() - stored_from
    except PlatformError as exc:
        _record(ctx, stored, study_ps, trigger, status="failed", started_at=utcnow(), note=exc.public_message)
        raise
    except StudyChanged:
        note = "new instances arrived during the run; results dropped, the study is routed again"
        _record(ctx, stored, study_ps, trigger, status="superseded", started_at=utcnow(), note=note)
        raise
    except Exception as exc:
        _record(ctx, stored, study_ps, trigger, status="failed", started_at=utcnow(), note=type(exc).__name__)
        raise
    total = time.perf_counter() - started
    latency = time.time() - received_at if received_at is not None else total
    result = InferenceResult(
        model=stored.ref,
        study=study_ps,
        device=dev,
        lesions=lesions,
        outputs=[kind for kind, _ in results],
        compute_s=compute_s,
        total_s=total,
        latency_s=latency,
        phases=phases,
    )
    _record(
        ctx,
        stored,
        study_ps,
        trigger,
        status="completed",
        started_at=dt.datetime.fromtimestamp(started_wall, dt.UTC),
        stored_at=utcnow(),
        latency_s=latency,
        compute_s=compute_s,
        total_s=total,
        outputs={
            "kinds": result.outputs,
            "lesions": len(lesions),
            "phases_s": {k: round(v, 3) for k, v in phases.items()},
        },
    )
    log.info(
        "inference %s on study %s: %d lesion(s), latency %.2f s (compute %.2f s)",
        stored.ref,
        study_ps,
        len(lesions),
        latency,
        compute_s,
    )
    return result


def folder_sink(out: Path, prefix: str) -> tuple[Sink, list[Path]]:
    """A sink writing ``<out>/<prefix>_<kind>.dcm`` (folder created private: results are identified)."""
    written: list[Path] = []

    def sink(results: list[tuple[str, pydicom.Dataset]]) -> None:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        for kind, dataset in results:
            path = out / f"{prefix}_{kind}.dcm"
            tmp = path.with_suffix(".tmp")
            dataset.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, path)
            written.append(path)

    return sink, written


def infer_folder(
    ctx: SiteContext, ref: str, folder: Path, out: Path, *, overlay: bool = False, device: str | None = None
) -> tuple[InferenceResult, list[Path]]:
    """``site-node infer NAME --input DIR --out DIR``: one study from a folder to result files.

    Raises:
        NotFoundError: unknown model. PermissionDeniedError: its file no longer matches its digest.
        InputError: the folder holds no single usable study.
    """
    stored = resolve_verified(ctx.engine, ctx.settings.home, ref)
    study = read_study_folder(folder)
    prefix = f"{stored.name}-v{stored.version}_" + ctx.pseudonymizer().pseudonym("study", study.study_uid)
    sink, written = folder_sink(out, prefix)
    result = infer_study(ctx, stored, study, sink, trigger="folder", overlay=overlay, device=device)
    return result, written
