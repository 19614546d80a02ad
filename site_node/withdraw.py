"""Withdrawal of a patient: OMOP rows, de-identified images, and a record every later stage honours.

``withdraw_patient`` accepts an MRN or a patient pseudonym. It deletes the patient's rows from
every CDM table that carries a ``person_id`` (taken from the specification), the bookkeeping rows
of the clinical ingest, the patient's folder under ``<home>/export/dicom``, and records the
withdrawal in ``site_node.db.withdrawal`` (the catalog drops the patient at the next publish and
ingest stages skip the patient from now on).
"""

from __future__ import annotations

import logging
import re
import shutil
from typing import Any

from sqlalchemy import delete, func, select

from site_node.clinical.omop.schema import cdm_table, clinical_patient, clinical_source
from site_node.clinical.omop.spec import person_tables
from site_node.db import utcnow, withdrawal
from site_node.home import SiteContext

log = logging.getLogger(__name__)
_PSEUDONYM = re.compile(r"^P[A-Z2-7]{15}$")


def resolve_pseudonym(site: SiteContext, patient_id: str) -> str:
    """The patient pseudonym of ``patient_id`` (already a pseudonym, or an MRN)."""
    value = patient_id.strip()
    if _PSEUDONYM.match(value):
        person = cdm_table("person")
        with site.engine.connect() as conn:
            known = conn.execute(
                select(person.c.person_id).where(person.c.person_source_value == value)
            ).first()
            known = (
                known
                or conn.execute(
                    select(clinical_patient.c.person_id).where(clinical_patient.c.patient_pseudonym == value)
                ).first()
            )
        if known is not None or (site.settings.export_dir / "dicom" / value).exists():
            return value
    return site.pseudonymizer().patient(value)


def withdraw_patient(site: SiteContext, patient_id: str, *, operator: str | None = None) -> dict[str, Any]:
    """Remove a patient's data and record the withdrawal (idempotent).

    Args:
        site: the opened site.
        patient_id: an MRN or a patient pseudonym.
        operator: who asked (kept in the withdrawal record).

    Returns:
        ``{"patient_pseudonym", "rows": {table: n}, "image_folders": n}``: counts only.
    """
    pseudonym = resolve_pseudonym(site, patient_id)
    person = cdm_table("person")
    rows: dict[str, int] = {}
    with site.engine.begin() as conn:
        ids = set(
            conn.execute(
                select(person.c.person_id).where(person.c.person_source_value == pseudonym)
            ).scalars()
        )
        ids |= set(
            conn.execute(
                select(clinical_patient.c.person_id).where(clinical_patient.c.patient_pseudonym == pseudonym)
            ).scalars()
        )
        for name in person_tables():
            table = cdm_table(name)
            for pid in ids:
                n = conn.execute(
                    select(func.count()).select_from(table).where(table.c.person_id == pid)
                ).scalar()
                if n:
                    conn.execute(delete(table).where(table.c.person_id == pid))
                    rows[name] = rows.get(name, 0) + int(n)
        for pid in ids:
            conn.execute(delete(clinical_source).where(clinical_source.c.person_id == pid))
            conn.execute(delete(clinical_patient).where(clinical_patient.c.person_id == pid))
        folders = _remove_images(site, pseudonym)
        counts = {"rows": rows, "image_folders": folders}
        conn.execute(delete(withdrawal).where(withdrawal.c.patient_pseudonym == pseudonym))
        conn.execute(
            withdrawal.insert().values(
                patient_pseudonym=pseudonym, withdrawn_at=utcnow(), operator=operator, counts=counts
            )
        )
    log.info("withdrew patient %s: %d rows, %d image folders", pseudonym, sum(rows.values()), folders)
    return {"patient_pseudonym": pseudonym, **counts}


def _remove_images(site: SiteContext, pseudonym: str) -> int:
    root = site.settings.export_dir / "dicom"
    folder = root / pseudonym
    if folder.is_dir() and folder.resolve().parent == root.resolve():
        shutil.rmtree(folder)
        return 1
    return 0
