"""OBSERVATION_PERIOD derived from each person's events (first to last event date).

Per the OMOP conventions for EHR data: one period per person from the earliest to the latest
clinical event (visits, conditions, procedures, drugs, measurements, observations, specimens,
images).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete, func, select

from common.crypto import Pseudonymizer
from site_node.clinical.omop.schema import cdm_table

DERIVED_PERIOD_TYPE = 32882
#: (table, start column, end column or None) of the events that span observation time.
EVENT_DATES: tuple[tuple[str, str, str | None], ...] = (
    ("visit_occurrence", "visit_start_date", "visit_end_date"),
    ("condition_occurrence", "condition_start_date", None),
    ("procedure_occurrence", "procedure_date", None),
    ("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date"),
    ("measurement", "measurement_date", None),
    ("observation", "observation_date", None),
    ("specimen", "specimen_date", None),
    ("image_occurrence", "image_occurrence_date", None),
)
_BATCH = 500


def _as_date(value: object) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def event_spans(conn: Connection, person_ids: list[int]) -> dict[int, tuple[dt.date, dt.date]]:
    """Earliest and latest event date of each person in ``person_ids`` that has events."""
    spans: dict[int, tuple[dt.date, dt.date]] = {}
    for start in range(0, len(person_ids), _BATCH):
        part = person_ids[start : start + _BATCH]
        for table_name, start_col, end_col in EVENT_DATES:
            table = cdm_table(table_name)
            last = func.max(table.c[end_col]) if end_col else func.max(table.c[start_col])
            query = (
                select(table.c.person_id, func.min(table.c[start_col]), last, func.max(table.c[start_col]))
                .where(table.c.person_id.in_(part))
                .group_by(table.c.person_id)
            )
            for person_id, low, high, high_start in conn.execute(query):
                low_d = _as_date(low)
                high_d = (
                    max(d for d in (_as_date(high), _as_date(high_start)) if d is not None)
                    if (high or high_start)
                    else None
                )
                if low_d is None or high_d is None:
                    continue
                old = spans.get(person_id)
                spans[person_id] = (min(low_d, old[0]), max(high_d, old[1])) if old else (low_d, high_d)
    return spans


def refresh_observation_periods(conn: Connection, pz: Pseudonymizer, person_ids: list[int]) -> int:
    """Replace the OBSERVATION_PERIOD rows of ``person_ids``; returns the rows written."""
    if not person_ids:
        return 0
    period = cdm_table("observation_period")
    for start in range(0, len(person_ids), _BATCH):
        conn.execute(delete(period).where(period.c.person_id.in_(person_ids[start : start + _BATCH])))
    spans = event_spans(conn, person_ids)
    rows = [
        {
            "observation_period_id": pz.integer_id("omop_row", f"observation_period:{pid}:0"),
            "person_id": pid,
            "observation_period_start_date": low,
            "observation_period_end_date": high,
            "period_type_concept_id": DERIVED_PERIOD_TYPE,
        }
        for pid, (low, high) in sorted(spans.items())
    ]
    if rows:
        conn.execute(period.insert(), rows)
    return len(rows)
