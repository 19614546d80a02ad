"""The summary of a FHIR run (counts only; codes are vocabulary codes, never patient data)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from site_node.clinical.fhir.codes import source_code


@dataclass
class IngestSummary:
    """What a run did (counts only; codes are vocabulary codes, never patient data)."""

    run_id: str = ""
    files: int = 0
    files_skipped: int = 0
    files_duplicate: int = 0
    files_ignored: int = 0
    resources_read: int = 0
    unchanged: int = 0
    replaced: int = 0
    dated_by_visit: int = 0
    persons: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    not_mapped_types: Counter[str] = field(default_factory=Counter)
    unmapped_codes: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    quarantined_fields: Counter[str] = field(default_factory=Counter)
    invalid_codes: Counter[str] = field(default_factory=Counter)
    no_mrn_identifier_systems: Counter[str] = field(default_factory=Counter)
    void_records: Counter[str] = field(default_factory=Counter)
    patients_keyed_by: Counter[str] = field(default_factory=Counter)

    def run_counts(self) -> dict[str, Any]:
        """What the audit record keeps (counts only)."""
        return {
            "files": self.files,
            "files_skipped": self.files_skipped,
            "files_duplicate": self.files_duplicate,
            "resources_read": self.resources_read,
            "rows": dict(self.rows),
            "quarantined": sum(self.quarantined.values()),
            "unmapped": sum(self.unmapped_codes.values()),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form.

        ``top_codes`` lists only valid codes of known vocabularies (``vocabulary|code``); anything
        else is only counted per vocabulary, so typed text never reaches the output.
        """
        vocab: Counter[str] = Counter()
        shown: Counter[str] = Counter()
        for key, count in self.unmapped_codes.items():
            name, _, code = key.partition("|")
            vocab[name] += count
            if source_code(name, code):
                shown[key] += count
        return {
            "files": self.files,
            "files_skipped": self.files_skipped,
            "files_duplicate": self.files_duplicate,
            "files_ignored": self.files_ignored,
            "resources_read": self.resources_read,
            "unchanged": self.unchanged,
            "replaced": self.replaced,
            "dated_by_visit": self.dated_by_visit,
            "persons": self.persons,
            "patients_keyed_by": dict(self.patients_keyed_by),
            "rows": dict(self.rows),
            "not_mapped_types": dict(self.not_mapped_types),
            "void_records": dict(self.void_records),
            "unmapped": {
                "total": sum(self.unmapped_codes.values()),
                "by_vocabulary": dict(vocab),
                "top_codes": dict(shown.most_common(20)),
            },
            "invalid_codes": dict(self.invalid_codes),
            "quarantined": {
                "total": sum(self.quarantined.values()),
                "by_reason": dict(self.quarantined),
                "by_field": dict(self.quarantined_fields.most_common(20)),
                "no_mrn_identifier_systems": dict(self.no_mrn_identifier_systems.most_common(10)),
            },
        }
