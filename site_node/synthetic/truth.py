"""Ground-truth bookkeeping: every planted PHI value and where it was put."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class PhiRegistry:
    """Collects planted PHI values with the files and fields that hold them.

    A value is keyed by ``(value, kind)``; locations are ``{"file": relative path, "field": name}``.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[dict[str, str]]] = {}

    def add(self, value: str, kind: str, file: str, field: str) -> None:
        """Record that ``value`` (of ``kind``) was written to ``field`` of ``file``."""
        if not value:
            return
        locations = self._entries.setdefault((str(value), kind), [])
        location = {"file": file, "field": field}
        if not locations or locations[-1] != location:
            locations.append(location)

    def add_many(self, items: list[tuple[str, str, str]], file: str) -> None:
        """Record several ``(value, kind, field)`` triples for one file."""
        for value, kind, field in items:
            self.add(value, kind, file, field)

    def as_list(self) -> list[dict[str, Any]]:
        """The ``phi`` list of truth.json, in first-planted order, locations de-duplicated."""
        out = []
        for (value, kind), locations in self._entries.items():
            unique = list({(loc["file"], loc["field"]): loc for loc in locations}.values())
            out.append({"value": value, "kind": kind, "locations": unique})
        return out


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    """Write ``truth`` as stable, pretty JSON."""
    path.write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n", encoding="utf-8")
