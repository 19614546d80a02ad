"""The site's own limits on job parameters, checked in its NVFlare client whatever the hub let through.

What a job runs with is read from what the site actually received, not from what the job says about
itself: the client configuration NVFlare instantiates (``config_fed_client.json``: the FedStats
privacy cleansers' arguments, the seg3d client's command line), the task data of each round (the
number of rounds) and the statistics request (histogram bins). :func:`check_job_policy` compares
them with ``SiteSettings.job_policy`` (:class:`common.job_params.JobPolicy`). Light module: no torch,
no NVFlare imports.
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
from pathlib import Path
from typing import Any

from common.config import SiteSettings
from common.errors import PermissionDeniedError
from common.job_params import policy_violations

log = logging.getLogger(__name__)

CLIENT_CONFIG = "config_fed_client.json"
#: FedStats cleanser class name -> the job parameters its arguments carry.
_CLEANSERS = {
    "MinCountCleanser": ("min_count",),
    "AddNoiseToMinMax": ("min_noise_level", "max_noise_level"),
    "HistogramBinsCleanser": ("max_bins_percent",),
}
#: seg3d client option -> job parameter.
_SEG3D_OPTIONS = {"--epochs": "local_epochs", "--patch": "patch", "--batch-size": "batch_size"}
_pending: dict[str, str] = {}
_pending_lock = threading.Lock()


def _client_config(custom_dir: Path) -> dict[str, Any]:
    path = custom_dir.parent / "config" / CLIENT_CONFIG
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _fedstats_params(config: dict[str, Any]) -> dict[str, Any]:
    """The cleansers' arguments; a cleanser that is missing counts as a refused (null) parameter."""
    found: dict[str, Any] = {name: None for names in _CLEANSERS.values() for name in names}
    for component in config.get("components", []):
        cls = str(component.get("path", "")).rsplit(".", 1)[-1]
        for name in _CLEANSERS.get(cls, ()):
            found[name] = (component.get("args") or {}).get(name)
    return found


def _seg3d_params(config: dict[str, Any]) -> dict[str, Any]:
    """The training options on the client's command line (``task_script_args``)."""
    found: dict[str, Any] = {}
    for entry in config.get("executors", []):
        args = ((entry.get("executor") or {}).get("args") or {}).get("task_script_args")
        if not isinstance(args, str):
            continue
        words = shlex.split(args)
        for option, value in zip(words, words[1:], strict=False):
            name = _SEG3D_OPTIONS.get(option)
            if name == "patch":
                found[name] = [int(v) if v.isascii() and v.isdigit() else -1 for v in value.split(",")]
            elif name:
                found[name] = int(value) if value.isascii() and value.isdigit() else None
    return found


def observed_params(custom_dir: Path, template: str) -> dict[str, Any]:
    """The parameters the site can see in the job's client configuration."""
    config = _client_config(custom_dir)
    if template == "fedstats":
        return _fedstats_params(config)
    if template == "seg3d":
        return _seg3d_params(config)
    return {}


def check_job_policy(settings: SiteSettings, template: str, params: dict[str, Any]) -> None:
    """Raise unless ``params`` lie inside the site's job policy.

    Args:
        settings: the bound site's settings (its ``job_policy`` and ``floor_k``).
        template: the job's template (as identified by its approved manifest).
        params: the parameters observed at the site.

    Raises:
        PermissionDeniedError: 'refused by site X: ...' naming the parameters, never their values.
    """
    bad = policy_violations(template, params, settings.job_policy, settings.floor_k)
    if bad:
        raise PermissionDeniedError(
            f"refused by site {settings.site_id}: {', '.join(bad)} outside the site's policy for {template}",
            field="job_policy",
        )


def note_refusal(job_id: str, message: str) -> None:
    """Remember a refusal found while a task ran (the site's result filter sends it instead)."""
    with _pending_lock:
        _pending[job_id] = message


def pending_refusal(job_id: str) -> str | None:
    """The refusal noted for ``job_id`` in this client process, if any (it stays: every later result
    of the job is refused too)."""
    with _pending_lock:
        return _pending.get(job_id)


def clear_refusal(job_id: str) -> None:
    """Forget what was noted for ``job_id`` (a job's run starts afresh)."""
    with _pending_lock:
        _pending.pop(job_id, None)
