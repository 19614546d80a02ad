"""Case-report-form CSV ingest through a column dictionary (format in docs/synthetic.md).

Each CSV row names a patient by MRN (same pseudonym, person_id and date offset as DICOM and FHIR)
and a date; every dictionary column with a value becomes one MEASUREMENT or OBSERVATION row.
Columns the dictionary does not describe are reported and ignored; free text is never loaded
(``value_type = "string"`` values are kept only when they fit ``value_as_string``, 60 characters).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from common.crypto import sha256_hex
from common.errors import InputError
from site_node.clinical.fhir.base import EHR, Mapped, source_key
from site_node.clinical.fhir.writer import OmopWriter
from site_node.clinical.omop.schema import cdm_table
from site_node.home import SiteContext
from site_node.ingest.journal import JournalEntry
from site_node.ingest.run import IngestRun, ingest_run
from site_node.ingest.source import source_pseudonym

_TABLES = ("measurement", "observation")
_VALUE_TYPES = ("number", "string", "concept")


@dataclass
class CsvSummary:
    """Counts of one CSV ingest."""

    rows_read: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    unknown_concepts: list[int] = field(default_factory=list)
    quarantined: Counter[str] = field(default_factory=Counter)
    skipped_file: bool = False  # the same CSV and dictionary were ingested by an earlier run

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rows_read": self.rows_read,
            "rows": dict(self.rows),
            "unchanged": self.unchanged,
            "ignored_columns": self.ignored_columns,
            "unknown_concepts": self.unknown_concepts,
            "quarantined": dict(self.quarantined),
            "skipped_file": self.skipped_file,
        }


@dataclass
class ColumnSpec:
    """One dictionary entry."""

    name: str
    table: str
    concept_id: int
    source_value: str
    unit: str | None
    unit_concept_id: int
    value_type: str
    values: dict[str, int]


def load_dictionary(path: Path) -> tuple[dict[str, Any], dict[str, ColumnSpec]]:
    """Read and check a column dictionary.

    Raises:
        InputError: unreadable TOML or an entry with a bad table / value_type (names the column).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        raise InputError("cannot read the column dictionary", field="dictionary") from None
    head = data.get("dictionary") or {}
    if not head.get("patient_key") or not head.get("date_column"):
        raise InputError("dictionary needs patient_key and date_column", field="dictionary")
    columns: dict[str, ColumnSpec] = {}
    for name, entry in (data.get("columns") or {}).items():
        if entry.get("role"):
            continue
        if entry.get("table") not in _TABLES or entry.get("value_type", "number") not in _VALUE_TYPES:
            raise InputError("dictionary entry has an unknown table or value_type", field=f"columns.{name}")
        columns[name] = ColumnSpec(
            name=name,
            table=entry["table"],
            concept_id=int(entry.get("concept_id") or 0),
            source_value=str(entry.get("source_value") or name),
            unit=entry.get("unit") or None,
            unit_concept_id=int(entry.get("unit_concept_id") or 0),
            value_type=entry.get("value_type", "number"),
            values={str(k): int(v) for k, v in (entry.get("values") or {}).items()},
        )
    return head, columns


def _drop_unknown_concepts(site: SiteContext, columns: dict[str, ColumnSpec]) -> list[int]:
    """Set dictionary concept IDs the site's vocabulary lacks to 0 (they would break the CDM keys).

    Returns:
        The unknown concept IDs (load the site's Athena vocabulary to keep them).
    """
    wanted = {c.concept_id for c in columns.values()} | {c.unit_concept_id for c in columns.values()}
    wanted |= {v for c in columns.values() for v in c.values.values()}
    wanted.discard(0)
    concept = cdm_table("concept")
    with site.engine.connect() as conn:
        known = (
            set(
                conn.execute(
                    select(concept.c.concept_id).where(concept.c.concept_id.in_(sorted(wanted)))
                ).scalars()
            )
            if wanted
            else set()
        )
    unknown = sorted(wanted - known)
    for spec in columns.values():
        spec.concept_id = spec.concept_id if spec.concept_id not in unknown else 0
        spec.unit_concept_id = spec.unit_concept_id if spec.unit_concept_id not in unknown else 0
        spec.values = {k: (v if v not in unknown else 0) for k, v in spec.values.items()}
    return unknown


def _value(spec: ColumnSpec, raw: str) -> dict[str, Any]:
    if spec.value_type == "number":
        try:
            return {"value_as_number": float(raw)}
        except ValueError:
            raise InputError("not a number", field=spec.name) from None
    if spec.value_type == "concept":
        # only values listed in the dictionary are codes; anything else may be typed text
        known = raw in spec.values
        return {"value_as_concept_id": spec.values.get(raw, 0), "value_source_value": raw if known else None}
    if len(raw) > 60:
        raise InputError("string value too long for value_as_string", field=spec.name)
    return {"value_as_string": raw, "value_source_value": raw}


def _row(
    writer: OmopWriter, spec: ColumnSpec, key: str, when: dt.date, raw: str
) -> tuple[str, dict[str, Any]]:
    value = _value(spec, raw)
    prefix = spec.table
    row: dict[str, Any] = {
        f"{prefix}_id": writer.pz.integer_id("omop_row", f"{prefix}:csv:{key}:{spec.name}:0"),
        f"{prefix}_concept_id": spec.concept_id,
        f"{prefix}_date": when,
        f"{prefix}_datetime": dt.datetime(when.year, when.month, when.day),
        f"{prefix}_type_concept_id": EHR,
        f"{prefix}_source_value": spec.source_value,
        "unit_concept_id": spec.unit_concept_id,
        "unit_source_value": spec.unit,
        "value_as_number": value.get("value_as_number"),
        "value_as_concept_id": value.get("value_as_concept_id"),
        "value_source_value": value.get("value_source_value"),
    }
    if prefix == "observation":
        row["value_as_string"] = value.get("value_as_string")
    return prefix, row


def ingest_csv(site: SiteContext, csv_path: Path, dictionary_path: Path) -> CsvSummary:
    """Ingest a case-report-form CSV in one audited, journaled run (stage ``csv``).

    The journal key is the hash of the CSV and its dictionary together: the same pair is skipped
    by a rerun. Rows that cannot be loaded are quarantined one by one (a header line and the row,
    content-addressed) with the reason and the column, never the value. A file with rows of
    patients the site does not know yet stays open, so a rerun after the FHIR ingest loads them.

    Raises:
        InputError: unreadable files or a CSV without the dictionary's key columns.
    """
    try:
        raw = csv_path.read_bytes()
    except OSError:
        raise InputError("cannot read the CSV file", field="FILE") from None
    return ingest_csv_bytes(site, raw, csv_path.name, dictionary_path)


def ingest_csv_bytes(
    site: SiteContext, raw: bytes, source_id: str, dictionary_path: Path, *, command: str = "csv"
) -> CsvSummary:
    """Ingest CSV content (a file's, or a released quarantine entry's) in one audited run.

    Args:
        site: the opened site.
        raw: the CSV bytes (UTF-8, a header line first).
        source_id: where it came from (only its keyed pseudonym is stored).
        dictionary_path: the column dictionary (TOML).
        command: the command name in the audit record.

    Raises:
        InputError: an unreadable dictionary or a CSV without the dictionary's key columns.
    """
    head, columns = load_dictionary(dictionary_path)
    pz = site.pseudonymizer()
    with ingest_run(site, "csv", command, {}) as run:
        summary = CsvSummary()
        sha = sha256_hex(raw + b"\x00" + dictionary_path.read_bytes())
        status = run.journal.claim(sha)
        if status != "new":
            run.journal.count(status)
            summary.skipped_file = True
            run.counts = summary.to_dict()
            return summary
        label = source_pseudonym(pz, source_id)
        _ingest_rows(site, run, raw, head, columns, summary, (label, sha))
        if not summary.quarantined.get("unknown_patient"):
            run.journal.record(JournalEntry(label, sha, "written"), claimed=True)
        run.counts = summary.to_dict()
    return summary


def _ingest_rows(
    site: SiteContext,
    run: IngestRun,
    raw: bytes,
    head: dict[str, Any],
    columns: dict[str, ColumnSpec],
    summary: CsvSummary,
    origin: tuple[str, str],
) -> None:
    """Map, write and quarantine the rows of one CSV (``origin``: its pseudonym and hash)."""
    writer = OmopWriter(site.engine, site.pseudonymizer(), "csv")
    person = cdm_table("person")
    with site.engine.connect() as conn:
        persons = set(conn.execute(select(person.c.person_id)).scalars())
    summary.unknown_concepts = _drop_unknown_concepts(site, columns)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("the CSV file is not UTF-8", field="FILE") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=head.get("delimiter", ","))
    header = reader.fieldnames or []
    if head["patient_key"] not in header or head["date_column"] not in header:
        raise InputError("CSV lacks the dictionary's key columns", field=head["patient_key"])
    summary.ignored_columns = [
        c for c in header if c not in columns and c not in (head["patient_key"], head["date_column"])
    ]
    mapped: list[Mapped] = []
    for number, record in enumerate(reader, start=1):
        summary.rows_read += 1
        before = Counter(summary.quarantined)
        item = _record(writer, record, head, columns, persons, summary)
        if item is not None:
            mapped.append(item)
        for reason in summary.quarantined - before:
            name, _, column = reason.partition(":")
            run.quarantine.put(
                "csv",
                _row_bytes(header, record, head.get("delimiter", ",")),
                name,
                field=column or None,
                source=origin[0],
                run_id=run.run_id,
                origin_sha256=origin[1],
                position=number,
            )
    outcome = writer.write(mapped)
    summary.rows.update(outcome.rows)
    summary.unchanged = outcome.unchanged
    writer.finish()


def _row_bytes(header: list[str], record: dict[str, str], delimiter: str) -> bytes:
    """One row as a small CSV (header and the row): what the quarantine keeps for review."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, delimiter=delimiter, extrasaction="ignore")
    writer.writeheader()
    writer.writerow(record)
    return out.getvalue().encode("utf-8")


def _record(
    writer: OmopWriter,
    record: dict[str, str],
    head: dict[str, Any],
    columns: dict[str, ColumnSpec],
    persons: set[int],
    summary: CsvSummary,
) -> Mapped | None:
    mrn = (record.get(head["patient_key"]) or "").strip()
    if not mrn:
        summary.quarantined["missing_patient_key"] += 1
        return None
    person = writer.person_for_mrn(mrn)
    if person.person_id not in persons:
        summary.quarantined["unknown_patient"] += 1
        return None
    try:
        raw_date = dt.datetime.strptime(
            (record.get(head["date_column"]) or "").strip(), head.get("date_format", "%Y-%m-%d")
        ).date()
    except ValueError:
        summary.quarantined["bad_date"] += 1
        return None
    when = raw_date + dt.timedelta(days=person.offset)
    key = f"{person.pseudonym}:{raw_date.isoformat()}"
    content = "\x1f".join(f"{c}={record.get(c) or ''}" for c in sorted(columns))
    item = Mapped(
        "CaseReportForm",
        source_key(writer.pz, f"csv:{key}"),
        sha256_hex(content.encode()),
        patient_key=f"mrn:{person.pseudonym}",
        dates_shifted=True,
    )
    writer.patients[item.patient_key or ""] = person
    for name, spec in columns.items():
        raw = (record.get(name) or "").strip()
        if not raw:
            continue
        try:
            item.rows.append(_row(writer, spec, key, when, raw))
        except InputError as exc:
            summary.quarantined[f"bad_value:{exc.field}"] += 1
    return item
