"""The job templates in ``jobs/``: discovery, parameter checking, loading a template's ``job.py``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from common.errors import NotFoundError
from common.job_params import validate_params

JOBS_ROOT = Path(__file__).resolve().parents[2] / "jobs"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def list_templates(root: Path = JOBS_ROOT) -> list[str]:
    """Names of the folders under ``jobs/`` that hold a ``job.py``."""
    return sorted(p.name for p in root.iterdir() if (p / "job.py").is_file())


def template_dir(name: str, root: Path = JOBS_ROOT) -> Path:
    """The folder of template ``name``.

    Raises:
        NotFoundError: no such template.
    """
    if not _NAME.match(name) or not (root / name / "job.py").is_file():
        raise NotFoundError("unknown job template", field="template")
    return root / name


def load_template(name: str, root: Path = JOBS_ROOT) -> ModuleType:
    """Import ``jobs/<name>/job.py`` (it imports NVFlare only inside ``build_recipe``)."""
    path = template_dir(name, root) / "job.py"
    spec = importlib.util.spec_from_file_location(f"fedimaging_job_{name}", path)
    if spec is None or spec.loader is None:
        raise NotFoundError("job template cannot be loaded", field="template")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The template's full parameter set (defaults + ``params``), checked against its typed model.

    Raises:
        NotFoundError: unknown template.
        InputError: an unknown parameter or an invalid value (names the parameter, never the value).
    """
    template_dir(name)
    return validate_params(name, params)
