"""Reading what a cohort summary needs from the site's OMOP and imaging tables.

One row per imaging series (IMAGE_OCCURRENCE joined to PERSON), the persons' conditions and, where
the site can count them, the instances per series. Patients in the ``withdrawal`` table are left
out. Identifiers and UIDs are read only to count distinct values; they never leave this module's
callers except as counts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, select, text

from common.errors import InputError
from site_node.db import withdrawal

log = logging.getLogger(__name__)

#: Non-standard columns some loaders add to IMAGE_OCCURRENCE with the series' instance count.
INSTANCE_COLUMNS = ("instance_count", "number_of_instances", "num_instances")


@dataclass(frozen=True)
class SeriesRow:
    """One imaging series with what the facets need."""

    person_id: int
    study_uid: str
    series_uid: str
    date: dt.date | None
    modality_concept_id: int | None
    anatomic_site_concept_id: int | None
    gender_concept_id: int | None
    year_of_birth: int | None
    instances: int | None


def _as_date(value: object) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value  # type: ignore[return-value]
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def withdrawn_pseudonyms(conn: Connection) -> set[str]:
    """Pseudonyms of withdrawn patients."""
    return {r[0] for r in conn.execute(select(withdrawal.c.patient_pseudonym))}


def read_series(engine: Engine, export_dir: Path | None = None) -> list[SeriesRow]:
    """All imaging series of non-withdrawn persons.

    Instances per series come from a non-standard count column when IMAGE_OCCURRENCE has one, else
    from the number of files in the series folder (``local_path`` under ``<export>/dicom``).

    Raises:
        InputError: the site database has no image_occurrence or person table yet.
    """
    with engine.connect() as conn:
        insp = inspect(conn)
        for table in ("image_occurrence", "person"):
            if not insp.has_table(table):
                raise InputError(
                    f"the site database has no {table} table: load clinical data first", field=table
                )
        columns = {c["name"] for c in insp.get_columns("image_occurrence")}
        inst_col = next((c for c in INSTANCE_COLUMNS if c in columns), None)
        # inst_col comes from the fixed allow-list INSTANCE_COLUMNS
        inst_sql = f"io.{inst_col}" if inst_col else "NULL"
        sql = (
            "SELECT io.person_id, io.image_study_uid, io.image_series_uid, io.image_occurrence_date, "
            "io.modality_concept_id, io.anatomic_site_concept_id, p.gender_concept_id, p.year_of_birth, "
            "p.person_source_value, " + inst_sql + ", io.local_path "
            "FROM image_occurrence io JOIN person p ON p.person_id = io.person_id"
        )
        gone = withdrawn_pseudonyms(conn)
        rows = [r for r in conn.execute(text(sql)) if r[8] not in gone]
    root = export_dir / "dicom" if export_dir else None
    out = [
        SeriesRow(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            _as_date(r[3]),
            r[4],
            r[5],
            r[6],
            r[7],
            int(r[9]) if r[9] is not None else _files_in(root, r[10]),
        )
        for r in rows
    ]
    log.info("read %d series for the cohort summary (%d withdrawn patients excluded)", len(out), len(gone))
    return out


def _files_in(root: Path | None, local_path: str | None) -> int | None:
    """Number of files in a series folder under the export root; None when unknown."""
    if root is None or not local_path:
        return None
    folder = (root / local_path).resolve()
    if not folder.is_dir() or root.resolve() not in folder.parents:
        return None
    return sum(1 for p in folder.iterdir() if p.is_file())


def read_conditions(engine: Engine, person_ids: set[int]) -> dict[int, set[int]]:
    """person_id -> distinct condition_concept_ids (empty without a condition_occurrence table)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("condition_occurrence"):
            return {}
        query = text("SELECT DISTINCT person_id, condition_concept_id FROM condition_occurrence")
        out: dict[int, set[int]] = defaultdict(set)
        for pid, cid in conn.execute(query):
            if pid in person_ids and cid:
                out[int(pid)].add(int(cid))
        return dict(out)
