"""One quarantine for every stage: content-addressed copies with a reason record beside each.

Layout under ``<home>/quarantine`` (folders 0700, files 0600)::

    <stage>/<id>.bin    the bytes set aside, exactly as received (a DICOM file, one FHIR record...)
    <stage>/<id>.json   the reason record: stage, reason, field, message, hashes, run, time

``id`` is the first 32 hex digits of the SHA-256 of the bytes, so no name ever carries a source
file name (export files are often named after patients) and the same bytes quarantined twice are
one entry. The reason record names the field or tag, never a value; the source appears only as its
keyed pseudonym. Raw content is read only by ``site-node quarantine show --raw`` (see
docs/quarantine.md for who may read it and how long it is kept).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.crypto import sha256_hex
from common.errors import ConflictError, InputError, NotFoundError

ID_CHARS = 32
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass
class QuarantineEntry:
    """The reason record of one quarantined item (no values, no source names)."""

    id: str
    stage: str
    reason: str
    field: str | None
    message: str | None
    content_sha256: str
    source: str | None  # keyed pseudonym of the source id
    origin_sha256: str | None  # the file or message the item came from, when it is a part of one
    position: int | None  # record number inside that origin (ndjson line, Bundle entry, CSV row)
    run_id: str | None
    quarantined_at: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, DIR_MODE)


def write_private(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 through a temporary name, then rename.

    Args:
        path: where.
        data: what.
        durable: also flush the file and its folder to disk (fsync) before returning, so that what was
            acknowledged survives a power loss, not only a killed process.
    """
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, FILE_MODE)  # an existing temporary keeps its mode through O_CREAT
    os.replace(tmp, path)
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _load(record: Path, stage: str) -> QuarantineEntry | None:
    """A reason record; DICOM records of older versions (same names, fewer keys) are filled in."""
    try:
        data = json.loads(record.read_bytes())
        stat = record.stat()
    except (ValueError, OSError):
        return None
    if not isinstance(data, dict) or not data.get("reason"):
        return None
    defaults: dict[str, Any] = {
        "id": record.stem,
        "stage": stage,
        "field": None,
        "message": None,
        "content_sha256": "",
        "source": None,
        "origin_sha256": None,
        "position": None,
        "run_id": None,
        "quarantined_at": dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).isoformat(timespec="seconds"),
        "size": 0,
    }
    known = {k: v for k, v in data.items() if k in QuarantineEntry.__dataclass_fields__}
    return QuarantineEntry(**{**defaults, **known})


class Quarantine:
    """The quarantine folder of a site (``settings.quarantine_dir``).

    Args:
        root: the quarantine folder; created 0700 on first use.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(
        self,
        stage: str,
        data: bytes,
        reason: str,
        *,
        field: str | None = None,
        message: str | None = None,
        source: str | None = None,
        run_id: str | None = None,
        origin_sha256: str | None = None,
        position: int | None = None,
    ) -> QuarantineEntry:
        """Set ``data`` aside with its reason (safe to call from worker processes).

        Args:
            stage: the stage that refused it (a folder name: letters, digits, ``_``).
            data: the bytes exactly as received.
            reason: a short code (``not_dicom``, ``validation_failed``...).
            field: the field path or DICOM tag concerned, never its value.
            message: a fixed public message (never built from input values).
            source: keyed pseudonym of the source id.
            run_id: the run that quarantined it.
            origin_sha256: hash of the file or message the item is a part of.
            position: the item's position inside that origin.

        Returns:
            The entry written.
        """
        if not stage.replace("_", "").isalnum():
            raise InputError("invalid quarantine stage", field="stage")
        sha = sha256_hex(data)
        entry = QuarantineEntry(
            id=sha[:ID_CHARS],
            stage=stage,
            reason=reason,
            field=field,
            message=message,
            content_sha256=sha,
            source=source,
            origin_sha256=origin_sha256,
            position=position,
            run_id=run_id,
            quarantined_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            size=len(data),
        )
        folder = self.root / stage
        _private_dir(self.root)
        _private_dir(folder)
        write_private(folder / f"{entry.id}.bin", data)
        write_private(folder / f"{entry.id}.json", json.dumps(entry.to_dict(), sort_keys=True).encode())
        return entry

    def path(self, entry: QuarantineEntry) -> Path:
        """The file holding an entry's bytes."""
        return self.root / entry.stage / f"{entry.id}.bin"

    def entries(self, stage: str | None = None) -> list[QuarantineEntry]:
        """Every entry (of one stage), oldest first."""
        if not self.root.is_dir():
            return []
        folders = [self.root / stage] if stage else sorted(p for p in self.root.iterdir() if p.is_dir())
        found = []
        for folder in folders:
            for record in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                entry = _load(record, folder.name)
                if entry is not None:
                    found.append(entry)
        return sorted(found, key=lambda e: (e.quarantined_at, e.stage, e.id))

    def find(self, entry_id: str, stage: str | None = None) -> QuarantineEntry:
        """The entry whose id starts with ``entry_id`` (at least 8 characters).

        Raises:
            InputError: the id is too short or not hexadecimal.
            NotFoundError: no such entry.
            ConflictError: the prefix matches several entries (give more characters or ``--stage``).
        """
        entry_id = entry_id.strip().lower()
        if len(entry_id) < 8 or any(c not in "0123456789abcdef" for c in entry_id):
            raise InputError("a quarantine id is at least 8 hexadecimal characters", field="ID")
        matches = [e for e in self.entries(stage) if e.id.startswith(entry_id)]
        if not matches:
            raise NotFoundError("no quarantine entry with this id", field="ID")
        if len(matches) > 1:
            raise ConflictError("several quarantine entries start with this id", field="ID")
        return matches[0]

    def read(self, entry: QuarantineEntry) -> bytes:
        """An entry's raw bytes (for the site admin's terminal or a release; never for a log)."""
        return self.path(entry).read_bytes()

    def remove(self, entry: QuarantineEntry) -> None:
        """Delete an entry's bytes and reason record."""
        self.path(entry).unlink(missing_ok=True)
        (self.root / entry.stage / f"{entry.id}.json").unlink(missing_ok=True)

    def purge(self, older_than_days: int | None = None, stage: str | None = None) -> list[QuarantineEntry]:
        """Delete entries quarantined more than ``older_than_days`` ago (all when None).

        Returns:
            The entries deleted.
        """
        cutoff = None
        if older_than_days is not None:
            cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=older_than_days)
        gone = []
        for entry in self.entries(stage):
            if cutoff is None or dt.datetime.fromisoformat(entry.quarantined_at) < cutoff:
                self.remove(entry)
                gone.append(entry)
        return gone
