"""The single writer: resolves patients, shifts dates, replaces changed records, bulk-inserts rows.

One :meth:`OmopWriter.write` call is one transaction. In-memory caches (patients, source hashes,
visit ids) are updated only after the transaction commits, so a failed chunk leaves them true.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Date, DateTime, Engine, String, delete, select, update

from common.crypto import Pseudonymizer, open_sealed, seal
from site_node.clinical.fhir.base import VISIT_START, VISIT_START_DAY, Mapped, PatientInfo
from site_node.clinical.omop.observation_period import refresh_observation_periods
from site_node.clinical.omop.schema import CDM_TABLES, clinical_patient, clinical_source
from site_node.clinical.omop.spec import primary_key
from site_node.db import utcnow, withdrawal

log = logging.getLogger(__name__)
_SEAL_PURPOSE = "clinical-patient-ref"
_IN_BATCH = 500


@dataclass(frozen=True)
class TableInfo:
    """Column order and the positions the writer touches, per CDM table (rows travel as lists)."""

    name: str
    columns: tuple[str, ...]
    key: int
    person: int
    visit: int | None
    dates: tuple[int, ...]
    timestamps: tuple[int, ...]
    lengths: tuple[tuple[int, int], ...]
    position: dict[str, int]

    def values(self, row: dict[str, Any]) -> list[Any]:
        """``row`` as a list in column order, strings cut to their column length.

        Raises:
            KeyError: ``row`` names a column the table does not have (a mapper bug).
        """
        out: list[Any] = [None] * len(self.columns)
        position = self.position
        for name, value in row.items():  # a mapper fills ~10 of a table's ~20 columns
            out[position[name]] = value
        for index, length in self.lengths:
            value = out[index]
            if value is not None and len(value) > length and isinstance(value, str):
                out[index] = value[:length]
        return out


def _table_info(name: str) -> TableInfo:
    table = CDM_TABLES[name]
    columns = tuple(c.name for c in table.columns)
    dates = tuple(i for i, c in enumerate(table.columns) if isinstance(c.type, Date | DateTime))
    stamps = tuple(i for i, c in enumerate(table.columns) if isinstance(c.type, DateTime))
    lengths = tuple(
        (i, c.type.length)
        for i, c in enumerate(table.columns)
        if isinstance(c.type, String) and c.type.length
    )
    visit = (
        columns.index("visit_occurrence_id")
        if "visit_occurrence_id" in columns and name != "visit_occurrence"
        else None
    )
    person = columns.index("person_id") if "person_id" in columns else -1
    key_name = primary_key(name) or "person_id"
    key = columns.index(key_name) if key_name in columns else -1
    position = {column: i for i, column in enumerate(columns)}
    return TableInfo(name, columns, key, person, visit, dates, stamps, lengths, position)


TABLES = {name: _table_info(name) for name in CDM_TABLES}
_SOURCE_COLUMNS = tuple(c.name for c in clinical_source.columns)


def as_list(table: str, row: dict[str, Any] | list[Any]) -> list[Any]:
    """A row in the writer's list form (workers convert before sending rows to the writer)."""
    return TABLES[table].values(row) if isinstance(row, dict) else row


def encode_rows(produced: list[tuple[str, Any]]) -> str:
    """``table:key,table:key`` (what a source record produced; keys are integers)."""
    return ",".join(f"{table}:{key}" for table, key in produced)


def decode_rows(text: str | None) -> list[tuple[str, int]]:
    """Inverse of :func:`encode_rows`."""
    out = []
    for part in (text or "").split(","):
        if part:
            table, key = part.rsplit(":", 1)
            out.append((table, int(key)))
    return out


def encode_codes(codes: dict[str, list[int]]) -> str | None:
    """``vocabulary:mapped:unmapped|...`` (codes a source record looked up)."""
    return "|".join(f"{v}:{m}:{u}" for v, (m, u) in codes.items()) or None


def decode_codes(text: str | None) -> dict[str, tuple[int, int]]:
    """Inverse of :func:`encode_codes`."""
    out = {}
    for part in (text or "").split("|"):
        if part:
            vocab, mapped, unmapped = part.rsplit(":", 2)
            out[vocab] = (int(mapped), int(unmapped))
    return out


def _sqlite_text(value: Any) -> Any:
    """A date or datetime as the text SQLAlchemy's SQLite types store (anything else unchanged)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ", "microseconds")
    return value.isoformat()


def _sqlite_dates(rows: list[list[Any]], indexes: tuple[int, ...]) -> None:
    """Dates and datetimes as the text SQLAlchemy's SQLite types store (in place).

    Records of one visit share their dates, so each distinct value is formatted once per call.
    """
    texts: dict[Any, Any] = {}
    for index in indexes:
        for row in rows:
            value = row[index]
            if value is not None:
                text = texts.get(value)
                if text is None:
                    text = texts[value] = _sqlite_text(value)
                row[index] = text


@dataclass
class Person:
    """A resolved patient."""

    person_id: int
    offset: int
    pseudonym: str


@dataclass
class WriteOutcome:
    """What one write did."""

    rows: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    replaced: int = 0
    withdrawn: int = 0
    unresolved: list[Mapped] = field(default_factory=list)
    new_patients: list[PatientInfo] = field(default_factory=list)
    dated_by_visit: int = 0
    undated: list[Mapped] = field(default_factory=list)  # dated by a visit the site does not have


class _Union:
    """Membership in either of two sets, without building their union."""

    __slots__ = ("first", "second")

    def __init__(self, first: set[Any], second: set[Any]) -> None:
        self.first = first
        self.second = second

    def __contains__(self, value: object) -> bool:
        return value in self.first or value in self.second


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[i : i + _IN_BATCH] for i in range(0, len(values), _IN_BATCH)]


class OmopWriter:
    """Writes mapped resources into the OMOP tables of the site database.

    Args:
        engine: the site database.
        pz: the site pseudonymizer (dates offsets, sealing MRNs).
        stage: ``fhir`` or ``csv`` (recorded per source record).
    """

    def __init__(self, engine: Engine, pz: Pseudonymizer, stage: str = "fhir") -> None:
        self.engine = engine
        self.pz = pz
        self.stage = stage
        self._seal_key = pz.subkey(_SEAL_PURPOSE)
        self.patients: dict[str, Person] = {}
        self.sources: dict[str, str] = {}
        self.visits: set[int] = set()
        self.touched: set[int] = set()
        self.withdrawn: set[str] = set()
        self._load()

    def _load(self) -> None:
        visit = CDM_TABLES["visit_occurrence"]
        with self.engine.connect() as conn:
            for row in conn.execute(select(clinical_patient)):
                mrn = open_sealed(self._seal_key, row.sealed_mrn, row.ref_key.encode()).decode()
                self.patients[row.ref_key] = Person(
                    row.person_id, self.pz.date_offset(mrn), row.patient_pseudonym
                )
            self.sources = {
                k: v
                for k, v in conn.execute(
                    select(clinical_source.c.source_key, clinical_source.c.content_sha256)
                )
            }
            self.visits = set(conn.execute(select(visit.c.visit_occurrence_id)).scalars())
            self.withdrawn = set(conn.execute(select(withdrawal.c.patient_pseudonym)).scalars())

    def known_hashes(self) -> frozenset[str]:
        """Content hashes of every source record already written."""
        return frozenset(self.sources.values())

    def person_for_mrn(self, mrn: str) -> Person:
        """The person of an MRN (CSV ingest knows MRNs directly)."""
        return Person(self.pz.integer_id("patient", mrn), self.pz.date_offset(mrn), self.pz.patient(mrn))

    def write(self, mapped: list[Mapped]) -> WriteOutcome:
        """Write ``mapped`` in one transaction (Patients must precede the resources that use them).

        Patients and visits this chunk adds are kept beside the caches and merged only after the
        commit: a chunk costs the same however many patients and visits the site already holds.
        """
        outcome = WriteOutcome()
        new_patients: dict[str, Person] = {}
        pending_patients: dict[str, tuple[PatientInfo, Person]] = {}
        by_source: dict[str, Mapped] = {}
        for item in mapped:
            if self.sources.get(item.source_key) == item.content_sha256:
                outcome.unchanged += 1
                continue
            if item.patient is not None and item.patient.pseudonym in self.withdrawn:
                outcome.withdrawn += 1
                continue
            if item.patient is not None:
                info = item.patient
                person = Person(info.person_id, self.pz.date_offset(info.mrn), info.pseudonym)
                new_patients[info.patient_key] = person
                pending_patients[info.patient_key] = (info, person)
            item.rows = [(table, as_list(table, row)) for table, row in item.rows]
            by_source[item.source_key] = item
        dated = [item for item in by_source.values() if item.visit_dated is not None]
        if dated:
            self._date_by_visits(dated, by_source, new_patients, outcome)
        visit_key = TABLES["visit_occurrence"].key
        new_visits = {
            row[visit_key]  # type: ignore[index]  # rows are lists from here on
            for item in by_source.values()
            for table, row in item.rows
            if table == "visit_occurrence"
        }
        visits = _Union(self.visits, new_visits)
        inserts: dict[str, list[list[Any]]] = defaultdict(list)
        upserts: dict[str, set[Any]] = defaultdict(set)
        source_rows: list[list[Any]] = []
        now = utcnow()
        for item in list(by_source.values()):
            found = self._person(new_patients, item)
            if found is None or found.pseudonym in self.withdrawn:
                if found is None:
                    outcome.unresolved.append(item)
                else:
                    outcome.withdrawn += 1
                del by_source[item.source_key]
                continue
            person = found
            produced = []
            delta = None if item.dates_shifted else dt.timedelta(days=person.offset)
            for table, listed in item.rows:
                row = cast(list[Any], listed)  # lists since the first loop of this method
                table_info = TABLES[table]
                self._prepare(table_info, row, person, delta, visits)
                inserts[table].append(row)
                produced.append((table, row[table_info.key]))
                if item.upsert or table in ("person", "death"):
                    upserts[table].add(row[table_info.key])
                outcome.rows[table] += 1
            self.touched.add(person.person_id)
            source_rows.append(
                [
                    item.source_key,
                    self.stage,
                    item.resource_type,
                    item.content_sha256,
                    person.person_id,
                    encode_rows(produced),
                    encode_codes(item.codes),
                    now,
                ]
            )
        replaced = [key for key in by_source if key in self.sources]
        with self.engine.begin() as conn:
            gone_visits = self._delete_sources(conn, replaced) - new_visits
            for table, keys in upserts.items():
                column = CDM_TABLES[table].c[TABLES[table].columns[TABLES[table].key]]
                for part in _chunks(sorted(keys)):
                    conn.execute(delete(CDM_TABLES[table]).where(column.in_(part)))
            for table, rows in inserts.items():
                if table in upserts:  # several records may (re)define the same person or study
                    key = TABLES[table].key
                    rows = list({row[key]: row for row in rows}.values())
                self._insert(conn, table, TABLES[table].columns, rows, TABLES[table].dates)
            if source_rows:
                self._insert(conn, "clinical_source", _SOURCE_COLUMNS, source_rows, (7,))
            self._save_patients(conn, pending_patients)
            self._unlink_visits(conn, gone_visits)
        outcome.replaced = len(replaced)
        outcome.new_patients = [
            info for info, _ in pending_patients.values() if info.patient_key not in self.patients
        ]
        self.patients.update(new_patients)
        self.visits.update(new_visits)
        self.visits.difference_update(gone_visits)
        self.sources.update({row[0]: row[3] for row in source_rows})
        return outcome

    def _person(self, new_patients: dict[str, Person], item: Mapped) -> Person | None:
        ref = item.patient_key or ""
        return new_patients.get(ref) or self.patients.get(ref)

    def _date_by_visits(
        self,
        dated: list[Mapped],
        by_source: dict[str, Mapped],
        new_patients: dict[str, Person],
        outcome: WriteOutcome,
    ) -> None:
        """Give records dated by their visit (:data:`VISIT_START`) the start of that visit.

        The visit is looked up among this chunk's rows, then in the database; it must belong to
        the record's own person. Records whose visit is not found are taken out of ``by_source``
        into ``outcome.undated``; records of an unknown patient are left for the main loop.
        """
        info = TABLES["visit_occurrence"]
        start_at, day_at = info.position["visit_start_datetime"], info.position["visit_start_date"]
        wanted = {item.visit_dated[0] for item in dated if item.visit_dated is not None}
        starts: dict[int, tuple[int, dt.datetime]] = {}  # visit id -> (person_id, shifted start)
        for item in by_source.values():
            for table, listed in item.rows:
                row = cast(list[Any], listed)
                if table != "visit_occurrence" or row[info.key] not in wanted:
                    continue
                person = self._person(new_patients, item)
                start = row[start_at] or dt.datetime.combine(row[day_at], dt.time())
                if person is not None:
                    starts[row[info.key]] = (person.person_id, start + dt.timedelta(days=person.offset))
        missing = sorted(wanted - starts.keys())
        if missing:
            visit = CDM_TABLES["visit_occurrence"]
            columns = (visit.c.visit_occurrence_id, visit.c.person_id)
            with self.engine.connect() as conn:
                for part in _chunks(missing):
                    query = select(*columns, visit.c.visit_start_date, visit.c.visit_start_datetime)
                    for visit_id, person_id, day, stamp in conn.execute(
                        query.where(visit.c.visit_occurrence_id.in_(part))
                    ):
                        starts[visit_id] = (person_id, stamp or dt.datetime.combine(day, dt.time()))
        for item in dated:
            assert item.visit_dated is not None
            person = self._person(new_patients, item)
            if person is None:
                continue  # an unknown patient: unresolved in the main loop
            found = starts.get(item.visit_dated[0])
            if found is None or found[0] != person.person_id:
                outcome.undated.append(item)
                del by_source[item.source_key]
                continue
            # back to the record's own (unshifted) time line: its rows are shifted with the rest
            start = found[1] - dt.timedelta(days=person.offset)
            for table, listed in item.rows:
                row = cast(list[Any], listed)
                for index in TABLES[table].dates:
                    value = row[index]
                    if type(value) is dt.datetime and value == VISIT_START:
                        row[index] = start
                    elif type(value) is dt.date and value == VISIT_START_DAY:
                        row[index] = start.date()
            outcome.dated_by_visit += 1

    @staticmethod
    def _prepare(
        info: TableInfo, row: list[Any], person: Person, delta: dt.timedelta | None, visits: _Union
    ) -> None:
        if info.person >= 0:
            row[info.person] = person.person_id
        if delta is not None:
            for index in info.dates:
                if row[index] is not None:
                    row[index] = row[index] + delta
        if info.visit is not None and row[info.visit] is not None and row[info.visit] not in visits:
            row[info.visit] = None

    @staticmethod
    def _insert(
        conn: Connection, table: str, columns: tuple[str, ...], rows: list[list[Any]], dates: tuple[int, ...]
    ) -> None:
        """Bulk insert through the driver's executemany (no per-row SQLAlchemy processing)."""
        if not rows:
            return
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        # table and column names come from the CDM specification, never from input data
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
        if conn.dialect.name == "sqlite":
            _sqlite_dates(rows, dates)
        conn.exec_driver_sql(sql, [tuple(row) for row in rows])

    def _delete_sources(self, conn: Connection, keys: list[str]) -> set[int]:
        """Remove the rows earlier versions of these source records produced.

        A ``person`` row stays: other records may reference it (a Patient whose MRN changed gets a
        new person, the old one keeps its records). Returns the visit ids removed, which the caller
        unlinks unless this write defines them again.
        """
        if not keys:
            return set()
        doomed: dict[str, set[Any]] = defaultdict(set)
        for part in _chunks(keys):
            for (rows,) in conn.execute(
                select(clinical_source.c.rows).where(clinical_source.c.source_key.in_(part))
            ):
                for table, key in decode_rows(rows):
                    doomed[table].add(key)
            conn.execute(delete(clinical_source).where(clinical_source.c.source_key.in_(part)))
        doomed.pop("person", None)
        for table, values in doomed.items():
            column = CDM_TABLES[table].c[TABLES[table].columns[TABLES[table].key]]
            for part in _chunks(sorted(values)):
                conn.execute(delete(CDM_TABLES[table]).where(column.in_(part)))
        return {int(v) for v in doomed.get("visit_occurrence", ())}

    @staticmethod
    def _unlink_visits(conn: Connection, visits: set[int]) -> None:
        """Records of a visit that is gone (its Encounter became void) keep no reference to it."""
        if not visits:
            return
        for info in TABLES.values():
            if info.visit is None:
                continue
            column = CDM_TABLES[info.name].c.visit_occurrence_id
            for part in _chunks(sorted(visits)):
                conn.execute(
                    update(CDM_TABLES[info.name]).where(column.in_(part)).values(visit_occurrence_id=None)
                )

    def _save_patients(self, conn: Connection, pending: dict[str, tuple[PatientInfo, Person]]) -> None:
        if not pending:
            return
        keys = list(pending)
        for part in _chunks(keys):
            conn.execute(delete(clinical_patient).where(clinical_patient.c.ref_key.in_(part)))
        conn.execute(
            clinical_patient.insert(),
            [
                {
                    "ref_key": key,
                    "person_id": info.person_id,
                    "patient_pseudonym": info.pseudonym,
                    "sealed_mrn": seal(self._seal_key, info.mrn.encode(), key.encode()),
                }
                for key, (info, _person) in pending.items()
            ],
        )

    def finish(self) -> int:
        """Recompute OBSERVATION_PERIOD for every person touched; returns how many were refreshed."""
        touched = sorted(self.touched)
        with self.engine.begin() as conn:
            refresh_observation_periods(conn, self.pz, touched)
        self.touched.clear()
        return len(touched)
