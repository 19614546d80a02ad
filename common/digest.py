"""Content digests shared by the site and the hub: job template folders, model files, datalists.

A site approves a job template by the digest of its folder; the hub's model registry records the
same digest on every model card, so a site can tell which approved code trained a model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from common.errors import InputError

MANIFEST = "fedimaging_job.json"
_SKIP_PARTS = {"__pycache__", ".pytest_cache"}
_CHUNK = 1 << 20


def template_files(folder: Path) -> list[str]:
    """The files of a job template folder that make up its digest (relative, sorted)."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not (_SKIP_PARTS & set(p.relative_to(folder).parts)) and p.suffix != ".pyc"
    )


def digest_files(folder: Path, files: list[str]) -> str:
    """SHA-256 over (relative path, content hash) of ``files`` under ``folder``.

    Raises:
        InputError: a listed file is missing or escapes ``folder``.
    """
    root = folder.resolve()
    outer = hashlib.sha256()
    for name in sorted(files):
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise InputError("a job file listed in the manifest is missing", field=MANIFEST)
        outer.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return outer.hexdigest()


def template_digest(folder: Path) -> str:
    """The digest a site admin approves for the job template in ``folder``."""
    return digest_files(folder, template_files(folder))


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file, read in chunks (model checkpoints can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
