"""Publishing, listing and serving model versions; recording federated evaluations.

:func:`publish_from_job` is called by the job service when a training job finishes;
:func:`record_evaluations` when an ``evaluate`` job does. Both are idempotent per job.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central_hub.jobs.results import JobProgress
from central_hub.models.models import HubModel, ModelEvaluation
from common.config import HubSettings
from common.digest import file_sha256, template_digest
from common.errors import InputError, NotFoundError

log = logging.getLogger(__name__)

EVALUATION_TEMPLATE = "evaluate"
MODEL_FILE = "model.pt"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: Template parameters that describe the network, copied onto the card so a site can rebuild it.
MODEL_ARG_KEYS = ("channels", "patch")


def model_dir(settings: HubSettings, name: str, version: int) -> Path:
    """Where the weights of ``name`` version ``version`` live under the hub home."""
    return settings.home / "models" / name / str(version)


def _site_metrics(progress: JobProgress) -> dict[str, Any]:
    """Each site's validation Dice of the global model per round, its last value, and cross-site results."""
    out: dict[str, Any] = {}
    for site, entries in sorted(progress.rounds.items()):
        dice = [e["val_dice"] for e in entries if isinstance(e.get("val_dice"), int | float)]
        out[site] = {"val_dice": dice[-1] if dice else None, "val_dice_by_round": dice}
        if entries and entries[-1].get("n_train") is not None:
            out[site]["n_train"] = entries[-1]["n_train"]
        if site in progress.cross_site:
            out[site]["cross_site"] = progress.cross_site[site]
    return out


def _next_version(session: Session, name: str) -> int:
    current = session.scalar(select(func.max(HubModel.version)).where(HubModel.name == name))
    return int(current or 0) + 1


def publish_from_job(
    session: Session, settings: HubSettings, job: Any, progress: JobProgress, weights: Path
) -> HubModel | None:
    """Publish the finished training job's global model as the next version of its model name.

    Args:
        session: hub session (the caller commits).
        settings: hub settings (the weights are copied under the hub home).
        job: the finished :class:`~central_hub.jobs.models.HubJob`.
        progress: what the job's server recorded.
        weights: the global model file the job produced.

    Returns:
        The new version, or None when this job already published one or is an evaluation.
    """
    from central_hub.jobs.templates import template_dir

    if job.template == EVALUATION_TEMPLATE:
        return None
    if session.scalar(select(HubModel).where(HubModel.job_id == job.id)) is not None:
        return None
    name = str(job.params.get("model_name") or job.template)
    version = _next_version(session, name)
    folder = model_dir(settings, name, version)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, folder / MODEL_FILE)
    last = progress.last_round
    model = HubModel(
        name=name,
        version=version,
        template=job.template,
        template_digest=template_digest(template_dir(job.template)),
        job_id=job.id,
        training_sites=list(job.sites),
        rounds=None if last is None else last + 1,
        site_metrics=_site_metrics(progress),
        dataset_versions=dict(progress.dataset_versions),
        model_args={k: job.params[k] for k in MODEL_ARG_KEYS if k in job.params},
        sha256=file_sha256(folder / MODEL_FILE),
        size_bytes=(folder / MODEL_FILE).stat().st_size,
    )
    session.add(model)
    session.flush()
    log.info("published model %s version %d from job %s", name, version, job.id)
    return model


def record_evaluations(session: Session, job: Any, progress: JobProgress) -> int:
    """Store each site's aggregate result (or refusal) of a finished ``evaluate`` job."""
    if job.template != EVALUATION_TEMPLATE:
        return 0
    if session.scalar(select(ModelEvaluation).where(ModelEvaluation.job_id == job.id)) is not None:
        return 0
    name, version = str(job.params["model_name"]), int(job.params["model_version"])
    stored = 0
    for site in job.sites:
        metrics = progress.evaluations.get(site)
        refused = progress.refusals.get(site)
        if metrics is None and refused is None:
            refused = "the site sent no result"
        session.add(
            ModelEvaluation(
                model_name=name,
                model_version=version,
                job_id=job.id,
                site=site,
                metrics=metrics or {},
                refused=refused[:300] if refused else None,
            )
        )
        stored += 1
    return stored


def parse_ref(ref: str) -> tuple[str, str]:
    """``NAME[:VERSION]`` -> (name, version or ``latest``).

    Raises:
        InputError: not a model name, or a version that is not a number.
    """
    name, _, version = ref.partition(":")
    version = version or "latest"
    if not NAME.match(name) or not (version == "latest" or version.isdigit()):
        raise InputError("a model is NAME or NAME:VERSION (VERSION a number)", field="model")
    return name, version


def get_model(session: Session, name: str, version: str | int = "latest") -> HubModel:
    """One model version (``latest`` = the highest).

    Raises:
        NotFoundError: no such model or version.
    """
    query = select(HubModel).where(HubModel.name == name)
    if str(version) == "latest":
        query = query.order_by(HubModel.version.desc()).limit(1)
    elif str(version).isdigit():
        query = query.where(HubModel.version == int(version))
    else:
        raise NotFoundError("no such model version", field="version")
    model = session.scalar(query)
    if model is None:
        raise NotFoundError("no such model or version", field="model")
    return model


def list_models(session: Session) -> list[HubModel]:
    """Every model version, newest first."""
    return list(session.scalars(select(HubModel).order_by(HubModel.name, HubModel.version.desc())))


def evaluations(session: Session, name: str, version: int) -> list[ModelEvaluation]:
    """The per-site evaluations of one version, newest job first."""
    query = (
        select(ModelEvaluation)
        .where(ModelEvaluation.model_name == name, ModelEvaluation.model_version == version)
        .order_by(ModelEvaluation.created_at.desc(), ModelEvaluation.site)
    )
    return list(session.scalars(query))


def full_card(session: Session, model: HubModel) -> dict[str, Any]:
    """The card with the version's federated evaluations (one row per site and job)."""
    return {
        **model.card(),
        "evaluations": [e.public() for e in evaluations(session, model.name, model.version)],
    }


def weights_path(settings: HubSettings, model: HubModel) -> Path:
    """The weights file of ``model``.

    Raises:
        NotFoundError: the file is missing from the hub home.
    """
    path = model_dir(settings, model.name, model.version) / MODEL_FILE
    if not path.is_file():
        raise NotFoundError("the model's weights file is missing on the hub", field="model")
    return path


def prepare_evaluation(session: Session, settings: HubSettings, params: dict[str, Any]) -> dict[str, Any]:
    """Resolve an ``evaluate`` job's ``model`` (``NAME[:VERSION]``) to the registry's file and card.

    The checkpoint path and the network's arguments come from the registry only; a submitter
    cannot name a file on the hub.

    Raises:
        InputError: no ``model``, or a parameter only the hub may set.
        NotFoundError: no such model version.
    """
    reserved = {"checkpoint", "model_name", "model_version", "sha256", "channels", "patch"} & set(params)
    if reserved:
        raise InputError("this parameter is set by the hub from the registry", field=sorted(reserved)[0])
    if "model" not in params:
        raise InputError("an evaluate job needs model=NAME[:VERSION]", field="model")
    name, version = parse_ref(str(params["model"]))
    model = get_model(session, name, version)
    return {
        **{k: v for k, v in params.items() if k != "model"},
        "model_name": model.name,
        "model_version": model.version,
        "checkpoint": str(weights_path(settings, model)),
        "sha256": model.sha256,
        **model.model_args,
    }
