"""Releasing a quarantine entry: ingest it again after the site admin fixed the cause.

The entry's bytes go through their own stage as an in-memory source item (DICOM de-identification,
FHIR ingest, CSV ingest), in an ingest run audited as ``quarantine reingest``. The entry is deleted only
when the stage now accepts it; otherwise it stays, with the new reason reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import InputError
from site_node.clinical.csv_ingest import ingest_csv_bytes
from site_node.clinical.fhir.ingest import ingest_items
from site_node.deid.runner import deid_sources
from site_node.home import SiteContext
from site_node.ingest.quarantine import Quarantine, QuarantineEntry
from site_node.ingest.source import SourceItem

COMMAND = "quarantine reingest"


def release(
    site: SiteContext, entry_id: str, *, stage: str | None = None, dictionary: Path | None = None
) -> dict[str, Any]:
    """Re-ingest one quarantine entry through its stage; delete it when accepted.

    Args:
        site: the opened site.
        entry_id: the entry's id (or a unique prefix of at least 8 characters).
        stage: the entry's stage, when the prefix is ambiguous.
        dictionary: the column dictionary (CSV entries only).

    Returns:
        ``id``, ``stage``, ``released`` (bool), and ``reasons`` when it was quarantined again.

    Raises:
        InputError: a CSV entry without ``dictionary``, or a stage without a release path.
        NotFoundError, ConflictError: see :meth:`Quarantine.find`.
    """
    store = Quarantine(site.settings.quarantine_dir)
    entry = store.find(entry_id, stage)
    item = SourceItem(f"quarantine:{entry.stage}:{entry.id}", data=store.read(entry))
    reasons = _reingest(site, entry, item, dictionary)
    released = not reasons
    if released:
        store.remove(entry)
    return {"id": entry.id, "stage": entry.stage, "released": released, "reasons": reasons}


def _reingest(
    site: SiteContext, entry: QuarantineEntry, item: SourceItem, dictionary: Path | None
) -> dict[str, int]:
    """The entry through its stage; returns the quarantine reasons of this try (empty: accepted)."""
    if entry.stage in ("dicom", "dicom_anon"):
        summary = deid_sources(
            site,
            [item],
            site.settings.export_dir / "dicom",
            anonymize=entry.stage == "dicom_anon",
            retry_quarantined=True,
            command=COMMAND,
        )
        return dict(summary.quarantined)
    if entry.stage == "fhir":
        return dict(ingest_items(site, [item], command=COMMAND).quarantined)
    if entry.stage == "csv":
        if dictionary is None:
            raise InputError("releasing a CSV row needs its column dictionary", field="--dictionary")
        csv_summary = ingest_csv_bytes(site, item.read(), item.source_id, dictionary, command=COMMAND)
        return dict(csv_summary.quarantined)
    raise InputError("this stage has no release path; ingest the source again", field="stage")
