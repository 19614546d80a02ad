"""DICOM de-identification (PS3.15 Annex E Basic profile + options, keyed pseudonyms, date shift).

Library API::

    from site_node.deid import DeidContext, deidentify_dataset, run_deid
    ctx = DeidContext(site.pseudonymizer(), site.settings.deid)
    ds = deidentify_dataset(ds, ctx)                # one pydicom Dataset, in place
    summary = run_deid(site, src, out, workers=2)  # a folder, journaled and audited
    summary = deid_sources(site, [SourceItem("pacs:1", data=raw)], out)  # in-memory instances
"""

from site_node.deid.engine import DeidContext, Deidentified, QuarantineError, deidentify, deidentify_dataset
from site_node.deid.runner import DeidSummary, deid_sources, run_deid

__all__ = [
    "DeidContext",
    "DeidSummary",
    "Deidentified",
    "QuarantineError",
    "deid_sources",
    "deidentify",
    "deidentify_dataset",
    "run_deid",
]
