"""Source items: what a stage ingests, named only by a keyed pseudonym and its content hash.

An item is bytes with a source id. A folder walk gives items backed by files (read lazily, in the
worker); a PACS connector or a release from quarantine gives items that carry their bytes. The
source id (a path relative to the source folder, a PACS instance reference) may itself be PHI:
Synthea and many EHR exports name files after the patient. It is never stored or shown; only
:func:`source_pseudonym` of it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common.crypto import Pseudonymizer, sha256_hex

#: Files whose name starts with this are half-written outputs of a killed run (never inputs).
TMP_MARK = ".partial-"


@dataclass(frozen=True)
class SourceItem:
    """One input: its bytes (given, or read from ``path``) and a source id.

    Args:
        source_id: where the item came from (PHI: keep it in memory only).
        path: the file holding the bytes, when ``data`` is not given.
        data: the bytes themselves (in-memory instances, released quarantine entries).
    """

    source_id: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        """The item's bytes.

        Raises:
            OSError: the file could not be read.
        """
        if self.data is not None:
            return self.data
        if self.path is None:
            raise OSError("source item without data or path")
        return self.path.read_bytes()


def source_pseudonym(pz: Pseudonymizer, source_id: str) -> str:
    """The keyed pseudonym that stands for a source id in the journal, quarantine and logs.

    Every stage uses the ``other`` namespace and the ``file:`` prefix, so one file gets one name.
    """
    return pz.pseudonym("other", f"file:{source_id}")


def unreadable_key(label: str) -> str:
    """The journal key of an item that could not be read (its content cannot be hashed)."""
    return sha256_hex(b"unreadable-file\x00" + label.encode("ascii"))


def iter_files(src: Path, exclude: list[Path] | None = None) -> Iterator[SourceItem]:
    """Every regular file under ``src`` (sorted, recursive) as an item named by its relative path.

    Args:
        src: a folder, or one file.
        exclude: folders not to walk (the output folder, the node's home).
    """
    if src.is_file():
        yield SourceItem(src.name, src)
        return
    excluded = [e.resolve() for e in exclude or []]
    for root, dirs, files in os.walk(src):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if (root_path / d).resolve() not in excluded)
        for name in sorted(files):
            if name.startswith(TMP_MARK):
                continue
            path = root_path / name
            if path.is_file():
                yield SourceItem(str(path.relative_to(src)), path)
