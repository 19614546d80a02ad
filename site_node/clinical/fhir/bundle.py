"""Reading FHIR Bundles: which entries to read, their ids, and codes given as plain JSON."""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace
from typing import Any

#: Every R4 Bundle.type: the entries' resources are read whatever the type.
BUNDLE_TYPES = {
    "document",
    "message",
    "history",
    "searchset",
    "collection",
    "transaction",
    "batch",
    "transaction-response",
    "batch-response",
}
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def entry_id(entry: dict[str, Any], resource: dict[str, Any]) -> str | None:
    """The resource's id, else one derived from the entry's fullUrl (``urn:uuid:<id>`` or the last
    path segment of a URL); None when neither gives a valid FHIR id."""
    if resource.get("id"):
        return str(resource["id"])
    url = str(entry.get("fullUrl") or "").strip()
    if url.startswith(("urn:uuid:", "urn:oid:")):
        candidate = url[9:] if url.startswith("urn:uuid:") else url[8:]
    else:
        candidate = url.split("/_history/")[0].rstrip("/").rsplit("/", 1)[-1] if url else ""
    return candidate if _ID.fullmatch(candidate) else None


def bundle_entries(
    bundle: dict[str, Any], skipped: Counter[str]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (entry, resource) pairs of a Bundle to read, each resource with an id.

    DELETE entries and entries without a resource are counted in ``skipped``; a ``history`` Bundle
    keeps only the newest version of each resource (entries come newest first) and a deleted
    resource is not read. A resource with neither id nor usable fullUrl is returned without id (it
    is quarantined as ``missing_id``).
    """
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    seen: set[str] = set()
    history = bundle.get("type") == "history"
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        raw_request = entry.get("request")
        request: dict[str, Any] = raw_request if isinstance(raw_request, dict) else {}
        res = entry.get("resource")
        key = str(request.get("url") or entry.get("fullUrl") or "")
        if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
            rid = entry_id(entry, res)
            if rid is not None and rid != res.get("id"):
                res = {**res, "id": rid}
            key = f"{res['resourceType']}/{rid}" if rid else key
        if history and key:
            if key in seen:
                continue
            seen.add(key)
        if request.get("method") == "DELETE":
            skipped["DELETE"] += 1
            continue
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            skipped["Bundle.entry without resource"] += 1
            continue
        out.append((entry, res))
    return out


def coded(concept: dict[str, Any]) -> SimpleNamespace:
    """A CodeableConcept given as JSON, in the attribute form the mappers read (codings only)."""
    codings = [
        SimpleNamespace(system=c.get("system"), code=str(c["code"]) if c.get("code") is not None else None)
        for c in concept.get("coding") or []
        if isinstance(c, dict)
    ]
    return SimpleNamespace(coding=codings)
