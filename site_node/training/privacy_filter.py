"""The site's NVFlare result filter: approval check, privacy filters, outbound ledger.

Every task result a site's NVFlare client sends passes through :class:`SiteOutboundFilter`:

1. the job must be approved by the site (template + code digest, see :mod:`approval`) and run with
   parameters inside the site's own job policy (:mod:`job_policy`); a refused job sends an empty
   result carrying only the refusal message;
2. the site's privacy settings (``SiteSettings.training_privacy``) are applied: variables matching
   ``exclude_vars`` are removed; ``percentile`` keeps only the largest weight changes (it needs
   weight differences and refuses full weights rather than silently sending them);
3. the exact serialised bytes are recorded in the outbound ledger (size, SHA-256, job, round).

The filter reads the bound site's own settings at run time, so a job cannot lower them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nvflare.apis.dxo import DataKind, MetaKey, from_shareable
from nvflare.apis.filter import Filter
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.app_constant import AppConstants

from common.config import SiteSettings, TrainingPrivacy, load_site_settings
from common.errors import PermissionDeniedError, PrivacyError
from site_node.db import get_engine
from site_node.outbound import record_outbound
from site_node.training.approval import check_approved, identify_job
from site_node.training.job_policy import check_job_policy, observed_params, pending_refusal
from site_node.training.site import resolve_site_home

log = logging.getLogger(__name__)

REFUSED_KEY = "fedimaging_refused"
FILTERED_HEADER = "fedimaging_site_filtered"


def exclude_variables(data: dict[str, Any], pattern: str | None) -> dict[str, Any]:
    """Drop every variable whose name matches ``pattern`` (regular expression)."""
    if not pattern:
        return data
    regex = re.compile(pattern)
    return {name: value for name, value in data.items() if not regex.search(name)}


def percentile_privacy(data: dict[str, Any], percentile: float, gamma: float) -> dict[str, Any]:
    """Keep only weight changes above the ``percentile`` of |change|, clipped to ``gamma``."""
    arrays = {name: np.asarray(value, dtype=np.float32) for name, value in data.items()}
    if not arrays:
        return data
    cutoff = np.percentile(np.concatenate([np.abs(a).ravel() for a in arrays.values()]), percentile)
    out: dict[str, Any] = {}
    for name, array in arrays.items():
        kept = np.where(np.abs(array) >= cutoff, np.clip(array, -gamma, gamma), 0.0).astype(np.float32)
        out[name] = torch.from_numpy(kept) if isinstance(data[name], torch.Tensor) else kept
    return out


def apply_privacy(dxo_kind: str, data: dict[str, Any], privacy: TrainingPrivacy) -> dict[str, Any]:
    """Apply the site's privacy settings to outgoing weights.

    Raises:
        PrivacyError: percentile privacy is configured but the job sends full weights.
    """
    data = exclude_variables(data, privacy.exclude_vars)
    if privacy.percentile is not None:
        if dxo_kind != DataKind.WEIGHT_DIFF:
            raise PrivacyError(
                "percentile privacy needs weight differences; the job sends full weights",
                field="training_privacy.percentile",
            )
        data = percentile_privacy(data, privacy.percentile, privacy.gamma)
    return data


class SiteOutboundFilter(Filter):
    """NVFlare task-result filter enforcing the site's approval, privacy and ledger rules."""

    def __init__(self) -> None:
        super().__init__()

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        """Filter one outgoing result (see module docstring); a result already filtered passes through.

        The filter may be configured twice (by the job and by the site's mandatory privacy scope);
        it acts once, so the ledger holds one row per message.
        """
        if shareable.get_header(FILTERED_HEADER):
            return shareable
        client = fl_ctx.get_identity_name()
        settings = load_site_settings(resolve_site_home(client))
        job_id = str(fl_ctx.get_job_id())
        round_ = shareable.get_header(AppConstants.CURRENT_ROUND)
        try:
            custom = Path(fl_ctx.get_engine().get_workspace().get_app_custom_dir(job_id))
            job = identify_job(custom)
            check_approved(settings, job)
            _check_policy(settings, job.template, custom, job_id, fl_ctx, shareable)
        except PermissionDeniedError as exc:
            shareable = _refusal(exc.public_message)
        else:
            try:
                shareable = self._filter_payload(shareable, settings)
            except PrivacyError as exc:  # fail closed, and tell the researcher why
                shareable = _refusal(f"refused by site {settings.site_id}: {exc.public_message}")
        shareable.set_header(FILTERED_HEADER, settings.site_id)
        _record(settings, shareable, job_id, round_)
        return shareable

    @staticmethod
    def _filter_payload(shareable: Shareable, settings: SiteSettings) -> Shareable:
        try:
            dxo = from_shareable(shareable)
        except ValueError:
            return shareable  # not a DXO (e.g. an error reply): nothing to filter
        if dxo.data_kind in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF) and dxo.data:
            dxo.data = apply_privacy(dxo.data_kind, dxo.data, settings.training_privacy)
            dxo.update_shareable(shareable)
        return shareable


def _check_policy(
    settings: SiteSettings, template: str, custom: Path, job_id: str, fl_ctx: FLContext, result: Shareable
) -> None:
    """The site's job policy over the client configuration and this round's number.

    The round comes from the result (NVFlare clears the task data before result filters run) and,
    where available, the total the server announced with the task.

    Raises:
        PermissionDeniedError: a parameter outside the site's policy (or one noted while the task ran).
    """
    noted = pending_refusal(job_id)
    if noted:
        raise PermissionDeniedError(noted, field="job_policy")
    params = observed_params(custom, template)
    rounds = []
    task_data = fl_ctx.get_prop(FLContextKey.TASK_DATA)
    if isinstance(task_data, Shareable):
        rounds.append(task_data.get_header(AppConstants.NUM_ROUNDS))
    current = result.get_header(AppConstants.CURRENT_ROUND)
    rounds.append(current + 1 if isinstance(current, int) and not isinstance(current, bool) else None)
    known = [r for r in rounds if isinstance(r, int) and not isinstance(r, bool)]
    if known:
        params["rounds"] = max(known)
    check_job_policy(settings, template, params)


def _refusal(message: str) -> Shareable:
    from nvflare.apis.dxo import DXO

    log.warning("%s", message)
    return DXO(DataKind.WEIGHTS, data={}, meta={REFUSED_KEY: message}).to_shareable()


def _register_decomposers() -> None:
    """FOBS decomposers for numpy arrays and torch tensors (the NVFlare runtime registers them too)."""
    from nvflare.app_common.decomposers import common_decomposers
    from nvflare.app_opt.pt.decomposers import TensorDecomposer
    from nvflare.fuel.utils import fobs

    common_decomposers.register()
    fobs.register(TensorDecomposer)


def _record(settings: SiteSettings, shareable: Shareable, job_id: str, round_: int | None) -> None:
    _register_decomposers()
    payload = shareable.to_bytes()
    try:
        dxo = from_shareable(shareable)
        kind = "model_update" if dxo.data_kind in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF) else "metrics"
        if dxo.get_meta_prop(REFUSED_KEY):
            kind = "refusal"
        elif kind == "metrics" and isinstance(dxo.data, dict) and "fedquery" in dxo.data:
            kind = "query_result"
        elif kind == "model_update" and dxo.get_meta_prop(MetaKey.INITIAL_METRICS):
            kind = "model_update+metrics"
    except ValueError:
        kind = "reply"
    record_outbound(
        get_engine(settings.database_url),
        destination="nvflare:server",
        kind=kind[:32],
        payload=payload,
        job_id=job_id,
        round_=round_ if isinstance(round_, int) else None,
    )
