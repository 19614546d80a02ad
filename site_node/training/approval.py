"""Job approval at the site: which job templates (and exact code) a site accepts.

``SiteSettings.approved_jobs`` maps a template name to the SHA-256 digest of its job folder. A job
carries a manifest (``fedimaging_job.json``: template name and file list); the site hashes the files
it actually received and runs the job only when the digest matches the approved one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from common.config import SiteSettings
from common.digest import MANIFEST, digest_files, template_digest, template_files
from common.errors import InputError, PermissionDeniedError

#: Written by the hub beside the manifest: the job's project and submitter (checked by site_node.access).
ACCESS_FILE = "fedimaging_access.json"

__all__ = [
    "ACCESS_FILE",
    "MANIFEST",
    "approve_template",
    "check_approved",
    "digest_files",
    "identify_job",
    "template_digest",
    "template_files",
]


def write_manifest(folder: Path, template: str, out: Path) -> Path:
    """Write the manifest that travels with a job built from ``folder``."""
    out.write_text(json.dumps({"template": template, "files": template_files(folder)}, indent=2))
    return out


def stage_client_files(template_dir: Path, template: str, work_dir: Path) -> Path:
    """A folder with the template's files and its manifest, for NVFlare to copy flat into custom/."""
    import shutil

    stage = work_dir / f"{template}_client_files"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in template_files(template_dir):
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template_dir / name, stage / name)
    write_manifest(template_dir, template, stage / MANIFEST)
    if (work_dir / ACCESS_FILE).is_file():  # not part of the digest: it names who runs the job, not code
        shutil.copyfile(work_dir / ACCESS_FILE, stage / ACCESS_FILE)
    return stage


@dataclass(frozen=True)
class JobIdentity:
    """A running job's template, the digest of the code the site received, and whom it runs for."""

    template: str
    digest: str
    project: str | None = None
    submitter: str | None = None


def find_custom_dir(hint: Path | None = None) -> Path:
    """The job's custom folder: ``hint`` if it holds the manifest, else the first ``sys.path`` entry with it.

    The simulator may run the template's own client.py, while the job's files (manifest included)
    sit in the app's custom folder, which NVFlare puts on ``sys.path``.
    """
    import sys

    candidates = ([hint] if hint else []) + [Path(p) for p in sys.path if p]
    for folder in candidates:
        if (folder / MANIFEST).is_file():
            return folder
    return hint or Path.cwd()


def _executed_scripts(custom_dir: Path) -> list[Path]:
    """Scripts the job's client config tells NVFlare to run (``task_script_path``), when present."""
    config = custom_dir.parent / "config" / "config_fed_client.json"
    if not config.is_file():
        return []
    data = json.loads(config.read_text())
    paths = [e.get("executor", {}).get("args", {}).get("task_script_path") for e in data.get("executors", [])]
    return [custom_dir / p for p in paths if isinstance(p, str) and (custom_dir / p).is_file()]


def identify_job(custom_dir: Path) -> JobIdentity:
    """Read the manifest in a job's custom folder and hash the files it lists.

    The script the job runs must be byte-identical to a file of the manifest, so a job cannot pass
    the check with approved files while running other code.

    Raises:
        PermissionDeniedError: no manifest, or the executed script is not one of the listed files.
    """
    manifest = custom_dir / MANIFEST
    if not manifest.exists():
        raise PermissionDeniedError("the job carries no template manifest", field=MANIFEST)
    data = json.loads(manifest.read_text())
    files = list(data["files"])
    digest = digest_files(custom_dir, files)
    listed = {hashlib.sha256((custom_dir / f).read_bytes()).hexdigest() for f in files}
    for script in _executed_scripts(custom_dir):
        if hashlib.sha256(script.read_bytes()).hexdigest() not in listed:
            raise PermissionDeniedError(
                "the job runs a script that is not part of its template", field="task_script_path"
            )
    access = _read_access(custom_dir)
    return JobIdentity(str(data["template"]), digest, access.get("project"), access.get("submitter"))


def _read_access(custom_dir: Path) -> dict[str, str | None]:
    path = custom_dir / ACCESS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError):
        raise PermissionDeniedError("the job's access file is unreadable", field=ACCESS_FILE) from None
    return {k: (str(data[k]) if data.get(k) is not None else None) for k in ("project", "submitter")}


def check_approved(settings: SiteSettings, job: JobIdentity) -> None:
    """Raise unless ``settings.approved_jobs`` approves exactly this template and code.

    Then the site's own access approvals (:mod:`site_node.access`): a job for a project must come
    from a submitter whose request the site approved for this template, before the approval ends.

    Raises:
        PermissionDeniedError: 'refused by site X' with the reason.
    """
    from site_node.access.enforce import check_access

    approved = settings.approved_jobs.get(job.template)
    if approved is None:
        raise PermissionDeniedError(
            f"refused by site {settings.site_id}: job template {job.template} is not approved",
            field="approved_jobs",
        )
    if approved != job.digest:
        raise PermissionDeniedError(
            f"refused by site {settings.site_id}: job template {job.template} code "
            "differs from the approved digest",
            field="approved_jobs",
        )
    check_access(settings, job.template, job.project, job.submitter)


def _set_toml_entry(text: str, section: str, key: str, value: str) -> str:
    """Set ``key = "value"`` inside ``[section]`` of a TOML text, keeping everything else as written."""
    lines = text.splitlines()
    entry = f'{key} = "{value}"'
    header = f"[{section}]"
    if header not in (line.strip() for line in lines):
        return "\n".join(lines + ["", header, entry]) + "\n"
    start = next(i for i, line in enumerate(lines) if line.strip() == header)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")), len(lines))
    for i in range(start + 1, end):
        if lines[i].split("=", 1)[0].strip().strip('"') == key:
            lines[i] = entry
            return "\n".join(lines) + "\n"
    lines.insert(end if end == len(lines) else end, entry)
    return "\n".join(lines) + "\n"


def approve_template(home: Path, template: str, folder: Path) -> str:
    """Record in ``<home>/site.toml`` that the site accepts ``template`` with the code now in ``folder``.

    Returns:
        The approved digest.

    Raises:
        InputError: the template folder does not exist or the name is not a plain identifier.
    """
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]+", template):
        raise InputError("template names are letters, digits, '-' or '_'", field="template")
    if not folder.is_dir():
        raise InputError(f"no job template folder for {template}", field="template")
    digest = template_digest(folder)
    toml_path = home / "site.toml"
    toml_path.write_text(_set_toml_entry(toml_path.read_text(), "approved_jobs", template, digest))
    return digest
