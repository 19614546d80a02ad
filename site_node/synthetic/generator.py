"""Generate one synthetic hospital export: DICOM, FHIR, CSV case-report form and truth.json."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConflictError, InputError
from site_node.synthetic import crf
from site_node.synthetic.context import SiteContext, SynthSummary, at
from site_node.synthetic.dicom_common import UidFactory
from site_node.synthetic.fhir import CONDITIONS, MEDICATIONS, FhirBuilder
from site_node.synthetic.imaging import Writer
from site_node.synthetic.people import Patient, Person, make_patients, make_physicians
from site_node.synthetic.studies import ct_study, other_study
from site_node.synthetic.styles import DIABETES, NSCLC, PNEUMONIA, STYLES, SiteStyle, get_style
from site_node.synthetic.truth import PhiRegistry, write_truth

logger = logging.getLogger(__name__)
TRUTH_SCHEMA_VERSION = 1
MAX_SEED = 2**31 - 1  # keeps UIDs (<root>.<seed>.<kind>.<serial>) well under 64 characters
FIRST_DAY = dt.date(2019, 1, 7)


def generate_site(out: Path, patients: int, seed: int, style: str, overwrite: bool = False) -> SynthSummary:
    """Write one synthetic hospital's export under ``out``.

    Args:
        out: output folder (created; must be empty unless ``overwrite``).
        patients: number of patients (1 to 10,000).
        seed: random seed (0 to 2**31 - 1); the same seed and style give byte-identical files.
        style: site style ``a``, ``b`` or ``c``.
        overwrite: allow a non-empty ``out`` (existing files with the same names are replaced).

    Returns:
        Counts of what was written.

    Raises:
        InputError: bad arguments.
        ConflictError: ``out`` is not empty and ``overwrite`` is false.
    """
    site = _open_site(Path(out), patients, seed, get_style(style), overwrite)
    people = make_patients(site.rng, site.style, patients)
    truth_patients = [_generate_patient(site, p) for p in people]
    site.summary.fhir = site.fhir.write(site.out / "fhir")
    rows = [row for p in truth_patients for row in p.pop("_crf")]
    crf.write_crf(site.out, rows, site.style.mrn_system, site.writer.phi)
    site.summary.crf_rows = len(rows)
    phi = site.writer.phi.as_list()
    site.summary.phi_values = len(phi)
    write_truth(site.out / "truth.json", _truth(site, truth_patients, phi))
    logger.info("synthetic site %s: %d patients, %d instances", style, patients, site.summary.instances)
    return site.summary


def _open_site(out: Path, patients: int, seed: int, style: SiteStyle, overwrite: bool) -> SiteContext:
    if not 1 <= patients <= 10_000:
        raise InputError("patients must be between 1 and 10000", field="patients")
    if not 0 <= seed <= MAX_SEED:
        raise InputError("seed must be between 0 and 2**31 - 1", field="seed")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConflictError("output folder is not empty", field="out")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, sorted(STYLES).index(style.name)])
    phi = PhiRegistry()
    writer = Writer(out=out, uids=UidFactory(style.uid_root, seed), phi=phi, rng=rng)
    stations = [f"{style.station_prefix}{int(rng.integers(1000, 9999))}" for _ in range(2)]
    summary = SynthSummary(
        out=str(out),
        style=style.name,
        seed=seed,
        patients=patients,
        uid_root=style.uid_root,
        mrn_system=style.mrn_system,
    )
    return SiteContext(
        out,
        style,
        seed,
        rng,
        writer,
        FhirBuilder(style, seed, rng, phi),
        make_physicians(rng),
        stations,
        summary,
    )


def _draw_conditions(site: SiteContext, patient: Patient) -> None:
    patient.conditions = [code for code, p in site.style.prevalence.items() if site.rng.random() < p]


def _generate_patient(site: SiteContext, patient: Patient) -> dict[str, Any]:
    rng = site.rng
    _draw_conditions(site, patient)
    first = FIRST_DAY + dt.timedelta(days=int(rng.integers(0, 1800)))
    deceased = _deceased(rng, patient, first)
    pid = site.fhir.patient(patient, deceased)
    diagnosis = at(first - dt.timedelta(days=int(rng.integers(14, 60))), rng)
    doctor = site.physicians[int(rng.integers(len(site.physicians)))]
    klass = "EMER" if PNEUMONIA in patient.conditions else "AMB"
    eid = site.fhir.encounter(pid, diagnosis, "Initial assessment", doctor, klass)
    weight, height = _body(rng, patient)
    _vitals(site, patient, pid, eid, diagnosis, weight, height, doctor)
    for code in patient.conditions:
        site.fhir.condition(pid, eid, code, diagnosis)
        if code in MEDICATIONS:
            site.fhir.medication(pid, eid, diagnosis, code, doctor)
    studies = []
    n_ct = 2 if rng.random() < 0.3 else 1
    for k in range(n_ct):
        when = at(first + dt.timedelta(days=120 * k + int(rng.integers(0, 30))), rng)
        studies.append(ct_study(site, patient, pid, when, follow_up=k > 0))
    for modality in ("MR", "CR", "US"):
        if rng.random() < site.style.extra_modality_fraction:
            when = at(first + dt.timedelta(days=int(rng.integers(1, 90))), rng)
            studies.append(other_study(site, patient, pid, when, modality))
    row = crf.crf_row(rng, patient, first.isoformat(), weight)
    return {
        "mrn": patient.mrn,
        "sex": patient.person.sex,
        "birth_date": patient.birth_date.isoformat(),
        "names": {
            "family": patient.person.family,
            "given": patient.person.given,
            "dicom": patient.person.dicom,
            "full": patient.person.full,
        },
        "other_ids": [{"value": patient.ssn, "kind": "ssn"}],
        "phone": patient.phone,
        "address": {
            "line": patient.street,
            "city": site.style.city,
            "state": site.style.state,
            "postal_code": patient.postal_code,
        },
        "fhir_patient_id": pid,
        "conditions": [
            {
                "system": "http://snomed.info/sct",
                "code": c,
                "display": CONDITIONS[c],
                "onset": diagnosis.date().isoformat(),
            }
            for c in patient.conditions
        ],
        "deceased": deceased.date().isoformat() if deceased else None,
        "studies": studies,
        "_crf": [row],
    }


def _deceased(rng: np.random.Generator, patient: Patient, first: dt.date) -> dt.datetime | None:
    """Some patients (more with NSCLC) died after their last imaging."""
    risk = 0.25 if NSCLC in patient.conditions else 0.05
    if rng.random() >= risk:
        return None
    return at(first + dt.timedelta(days=int(rng.integers(200, 700))), rng)


def _body(rng: np.random.Generator, patient: Patient) -> tuple[float, float]:
    height = float(rng.normal(176 if patient.person.sex == "M" else 163, 7))
    bmi = float(rng.normal(31 if DIABETES in patient.conditions else 26, 4))
    return round(bmi * (height / 100) ** 2, 1), round(height, 1)


def _vitals(
    site: SiteContext,
    patient: Patient,
    pid: str,
    eid: str,
    when: dt.datetime,
    weight: float,
    height: float,
    doctor: Person,
) -> None:
    rng, fb = site.rng, site.fhir
    note = f"Measured by nurse; patient {patient.person.full} was fasting"
    fb.observation(pid, eid, when, "29463-7", "Body weight", weight, "kg", "vital-signs")
    fb.observation(pid, eid, when, "8302-2", "Body height", height, "cm", "vital-signs")
    fb.observation(
        pid,
        eid,
        when,
        "39156-5",
        "Body mass index (BMI) [Ratio]",
        round(weight / (height / 100) ** 2, 1),
        "kg/m2",
        "vital-signs",
    )
    fb.blood_pressure(pid, eid, when, int(rng.normal(138, 15)), int(rng.normal(84, 9)))
    diabetic = DIABETES in patient.conditions
    fb.observation(
        pid,
        eid,
        when,
        "2339-0",
        "Glucose [Mass/volume] in Blood",
        round(float(rng.normal(165 if diabetic else 95, 15)), 0),
        "mg/dL",
        "laboratory",
        note=note,
    )
    fb.observation(
        pid,
        eid,
        when,
        "4548-4",
        "Hemoglobin A1c/Hemoglobin.total in Blood",
        round(float(rng.normal(8.1 if diabetic else 5.4, 0.5)), 1),
        "%",
        "laboratory",
    )
    site.writer.phi.add_many(
        patient.person.phi("patient", "Observation.note", full=True), "fhir/Observation.ndjson"
    )


def _truth(site: SiteContext, patients: list[dict[str, Any]], phi: list[dict[str, Any]]) -> dict[str, Any]:
    s = site.style
    return {
        "schema_version": TRUTH_SCHEMA_VERSION,
        "generator": "site_node.synthetic",
        "site_style": s.name,
        "seed": site.seed,
        "uid_root": s.uid_root,
        "mrn_system": s.mrn_system,
        "institution": {
            "name": s.institution,
            "address": s.institution_address,
            "manufacturer": s.manufacturer,
            "model": s.model,
            "stations": site.stations,
            "private_creator": s.private_creator,
        },
        "physicians": [p.dicom for p in site.physicians],
        "crf": {"csv": crf.CRF_FILE, "dictionary": crf.DICTIONARY_FILE},
        "fhir": {kind: f"fhir/{kind}.ndjson" for kind in site.summary.fhir},
        "patients": patients,
        "phi": phi,
    }
