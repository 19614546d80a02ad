"""Finding the FHIR files of an export: which files hold FHIR, their order, the Medication index."""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError
from site_node.clinical.fhir.worker import coded, parse_json, priority
from site_node.ingest.source import SourceItem

_TYPE_RE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')
_SUFFIXES = (".ndjson", ".json", ".ndjson.gz", ".json.gz")
_NDJSON = (".ndjson", ".ndjson.gz")
READ_ERRORS = (OSError, EOFError, zlib.error)
#: Cap on the ``Medication/<id>`` code index built before a run (bulk exports list each drug once).
MAX_MEDICATIONS = 200_000


@dataclass
class SourceFile:
    """One input (a file, or bytes such as a released quarantine entry), with what ordering and
    journalling need. ``name`` is the source id: PHI, kept in memory only."""

    item: SourceItem
    kind: str  # ndjson | json
    resource_type: str | None
    sha256: str = ""

    @property
    def name(self) -> str:
        """The source id (a path relative to the source folder)."""
        return self.item.source_id

    @property
    def path(self) -> Path | None:
        """The file, when the input is one."""
        return self.item.path


def discover(sources: Iterable[Path], ignored: Counter[str] | None = None) -> list[SourceFile]:
    """The FHIR files under ``sources`` (files or folders), Patients first, then Encounters.

    ``.ndjson`` / ``.json`` files, also gzip-compressed (``.ndjson.gz`` / ``.json.gz``). Other files
    found in a folder are counted in ``ignored["files"]``.

    Raises:
        InputError: a source does not exist.
    """
    found: list[SourceFile] = []
    for src in sources:
        src = Path(src)
        if not src.exists():
            raise InputError("FHIR source not found", field="SRC")
        paths = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        for path in paths:
            if not path.name.lower().endswith(_SUFFIXES):
                if ignored is not None:
                    ignored["files"] += 1
                continue
            kind = "ndjson" if path.name.lower().endswith(_NDJSON) else "json"
            maybe_fhir, resource_type = _inspect(path, kind)
            if not maybe_fhir:  # a bulk-export log or manifest, a generator's metadata
                if ignored is not None:
                    ignored["files"] += 1
                continue
            name = str(path.relative_to(src)) if src.is_dir() else path.name
            found.append(SourceFile(SourceItem(name, path), kind, resource_type))
    found.sort(key=lambda f: (f.kind != "ndjson", priority(f.resource_type), f.name))
    return found


def _open(path: Path) -> Any:
    """A binary handle on ``path``, decompressing ``*.gz``."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def read_source(src: SourceFile) -> bytes:
    """The content of an input (gzip-compressed files are decompressed)."""
    if src.path is None:
        return src.item.read()
    with _open(src.path) as handle:
        data: bytes = handle.read()
    return data


def raw_bytes(src: SourceFile) -> bytes:
    """The input as stored (compressed files compressed): what its journal hash is taken of."""
    return src.item.read()


#: How much of a ``.json`` file is read first when looking for ``"resourceType"``.
_PEEK_BYTES = 1 << 16


def _inspect(path: Path, kind: str) -> tuple[bool, str | None]:
    """Whether ``path`` may hold FHIR resources, and the resourceType its first ndjson line names.

    A file holds no FHIR when it is an ndjson file whose first non-blank line is a JSON object
    without ``resourceType``, or a ``.json`` file that never says ``"resourceType"`` (bulk-data
    exports put their manifest and log beside the resource files; generators add metadata files).
    One open per file: the first line for ndjson; for ``.json`` the first 64 KiB, and the rest only
    when the name was not in them. Anything unreadable or not parseable is left to the ingest,
    which quarantines it.
    """
    try:
        with _open(path) as handle:
            if kind != "ndjson":  # every FHIR JSON document names a resourceType somewhere
                head = handle.read(_PEEK_BYTES)
                if b'"resourceType"' in head:
                    return True, None
                return b'"resourceType"' in head[-16:] + handle.read(), None  # the name may straddle
            line = handle.readline(1 << 20)
            match = _TYPE_RE.search(line[:65536])
            resource_type = match.group(1).decode() if match else None
            while line and not line.strip():
                line = handle.readline(1 << 20)
    except READ_ERRORS:
        return True, None
    if not line:
        return True, resource_type
    try:
        obj = parse_json(line)
    except ValueError:
        return True, resource_type
    return not (isinstance(obj, dict) and "resourceType" not in obj), resource_type


def medication_index(files: list[SourceFile]) -> dict[str, Any]:
    """``Medication/<id>`` -> code of the Medication resources in the export's Medication ndjson files.

    Bulk exports (Epic, Cerner) ship Medication resources in their own file and reference them from
    MedicationRequest / MedicationStatement. Only ids and codings are kept.
    """
    index: dict[str, Any] = {}
    for src in files:
        if src.kind != "ndjson" or src.resource_type != "Medication":
            continue
        try:
            data = read_source(src)
        except READ_ERRORS:
            continue
        for raw in data.split(b"\n"):
            try:
                obj = parse_json(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            ok = isinstance(obj, dict) and obj.get("resourceType") == "Medication"
            if ok and obj.get("id") and isinstance(obj.get("code"), dict) and len(index) < MAX_MEDICATIONS:
                index[f"Medication/{obj['id']}"] = coded(obj["code"])
    return index
