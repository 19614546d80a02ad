"""FHIR R4 bulk export (ndjson, one file per resource type) of the synthetic patients."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from site_node.synthetic.people import Patient, Person
from site_node.synthetic.styles import AFIB, DIABETES, HYPERTENSION, NSCLC, PNEUMONIA, SiteStyle
from site_node.synthetic.truth import PhiRegistry

RESOURCE_TYPES = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "MedicationRequest",
    "ImagingStudy",
)
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DCM = "http://dicom.nema.org/resources/ontology/DCM"

CONDITIONS = {
    NSCLC: "Non-small cell lung cancer",
    DIABETES: "Type 2 diabetes mellitus",
    HYPERTENSION: "Hypertensive disorder",
    PNEUMONIA: "Pneumonia",
    AFIB: "Atrial fibrillation",
}
MEDICATIONS = {
    DIABETES: ("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    HYPERTENSION: ("314076", "lisinopril 10 MG Oral Tablet"),
    AFIB: ("1364435", "apixaban 5 MG Oral Tablet"),
    PNEUMONIA: ("562508", "amoxicillin 875 MG / clavulanate 125 MG Oral Tablet"),
}
IMAGING_PROCEDURES = {
    "CT": ("77477000", "Computerized axial tomography"),
    "MR": ("113091000", "Magnetic resonance imaging"),
    "CR": ("168537006", "Plain radiography"),
    "US": ("16310003", "Diagnostic ultrasonography"),
    "OT": ("363679005", "Imaging"),
}
BODY_SITE = {"system": SCT, "code": "51185008", "display": "Thoracic structure"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
ENCOUNTER_CLASSES = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter"}
TZ = {"a": "-06:00", "b": "-05:00", "c": "-06:00"}


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


def _dates(node: Any, path: str) -> list[tuple[str, str, str]]:
    """Every date (``YYYY-MM-DD``, the date part of dateTimes) in a resource, as ``date`` PHI."""
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _dates(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [item for value in node for item in _dates(value, path)]
    if isinstance(node, str) and DATE.match(node) and not path.endswith(".birthDate"):
        return [(node[:10], "date", path)]
    return []


class FhirBuilder:
    """Builds the resources of one site and records the PHI it plants."""

    def __init__(self, style: SiteStyle, seed: int, rng: np.random.Generator, phi: PhiRegistry) -> None:
        self.style = style
        self.prefix = f"{style.name}{seed}"
        self.rng = rng
        self.phi = phi
        self.resources: dict[str, list[dict[str, Any]]] = {t: [] for t in RESOURCE_TYPES}
        self._counter = 0

    def _id(self, kind: str) -> str:
        self._counter += 1
        return f"{self.prefix}-{kind.lower()}-{self._counter}"

    def _when(self, when: dt.datetime) -> str:
        return when.strftime("%Y-%m-%dT%H:%M:%S") + TZ[self.style.name]

    def _add(self, resource: dict[str, Any], phi: list[tuple[str, str, str]]) -> None:
        kind = resource["resourceType"]
        self.resources[kind].append(resource)
        for value, what, field in phi + _dates(resource, kind):
            self.phi.add(value, what, f"fhir/{kind}.ndjson", field)

    def patient(self, p: Patient, deceased: dt.datetime | None = None) -> str:
        """Add the Patient resource; return its id."""
        pid = self._id("Patient")
        birth = p.birth_date.isoformat()
        div = (
            f'<div xmlns="http://www.w3.org/1999/xhtml">{p.person.full}, MRN {p.mrn}, '
            f"born {birth}, {p.street}, {self.style.city}</div>"
        )
        self._add(
            {
                "resourceType": "Patient",
                "id": pid,
                "text": {"status": "generated", "div": div},
                "identifier": [
                    {
                        "use": "usual",
                        "type": _coding(V2_0203, "MR", "Medical record number"),
                        "system": self.style.mrn_system,
                        "value": p.mrn,
                    },
                    {
                        "use": "official",
                        "type": _coding(V2_0203, "SS", "Social Security number"),
                        "system": "http://hl7.org/fhir/sid/us-ssn",
                        "value": p.ssn,
                    },
                ],
                "name": [{"use": "official", "family": p.person.family, "given": [p.person.given]}],
                "telecom": [{"system": "phone", "value": p.phone, "use": "home"}],
                "gender": "female" if p.person.sex == "F" else "male",
                "birthDate": birth,
                **({"deceasedDateTime": self._when(deceased)} if deceased else {"deceasedBoolean": False}),
                "address": [
                    {
                        "use": "home",
                        "line": [p.street],
                        "city": self.style.city,
                        "state": self.style.state,
                        "postalCode": p.postal_code,
                        "country": "US",
                    }
                ],
            },
            [
                (p.mrn, "mrn", "Patient.identifier"),
                (p.ssn, "other_patient_id", "Patient.identifier"),
                *p.person.phi("patient", "Patient.name"),
                *p.person.phi("patient", "Patient.text", full=True),
                (birth, "birth_date", "Patient.birthDate"),
                (p.street, "street", "Patient.address"),
                (p.phone, "phone", "Patient.telecom"),
            ],
        )
        return pid

    def encounter(self, pid: str, when: dt.datetime, reason: str, doctor: Person, klass: str = "AMB") -> str:
        """Add an Encounter (v3 ActCode class ``AMB``, ``EMER`` or ``IMP``) on ``when``; return its id."""
        eid = self._id("Encounter")
        hours = {"AMB": 1, "EMER": 6, "IMP": 96}[klass]
        self._add(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": klass,
                    "display": ENCOUNTER_CLASSES[klass],
                },
                "type": [_coding(SCT, "185349003", "Encounter for check up")],
                "subject": _ref("Patient", pid),
                "participant": [{"individual": {"display": f"Dr. {doctor.full}"}}],
                "period": {"start": self._when(when), "end": self._when(when + dt.timedelta(hours=hours))},
                "reasonCode": [{"text": reason}],
                "serviceProvider": {"display": self.style.institution},
            },
            [
                *doctor.phi("physician", "Encounter.participant", full=True),
                (self.style.institution, "institution_name", "Encounter.serviceProvider"),
            ],
        )
        return eid

    def condition(self, pid: str, eid: str, code: str, onset: dt.datetime) -> None:
        """Add a Condition (SNOMED ``code``)."""
        self._add(
            {
                "resourceType": "Condition",
                "id": self._id("Condition"),
                "clinicalStatus": _coding(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
                ),
                "verificationStatus": _coding(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
                ),
                "category": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/condition-category",
                        "encounter-diagnosis",
                        "Encounter Diagnosis",
                    )
                ],
                "code": _coding(SCT, code, CONDITIONS[code]),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", eid),
                "onsetDateTime": self._when(onset),
                "recordedDate": self._when(onset),
            },
            [],
        )

    def observation(
        self,
        pid: str,
        eid: str,
        when: dt.datetime,
        code: str,
        display: str,
        value: float,
        unit: str,
        category: str,
        note: str | None = None,
    ) -> None:
        """Add a LOINC Observation with a quantity value (and optionally a note)."""
        res: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self._id("Observation"),
            "status": "final",
            "category": [
                _coding(
                    "http://terminology.hl7.org/CodeSystem/observation-category",
                    category,
                    category.replace("-", " ").title(),
                )
            ],
            "code": _coding(LOINC, code, display),
            "subject": _ref("Patient", pid),
            "encounter": _ref("Encounter", eid),
            "effectiveDateTime": self._when(when),
            "issued": self._when(when + dt.timedelta(hours=2)),
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        }
        if note:
            res["note"] = [{"text": note}]
        self._add(res, [])

    def blood_pressure(self, pid: str, eid: str, when: dt.datetime, systolic: int, diastolic: int) -> None:
        """Add a blood pressure panel (85354-9) with systolic and diastolic components."""

        def comp(code: str, display: str, value: int) -> dict[str, Any]:
            return {
                "code": _coding(LOINC, code, display),
                "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
            }

        self._add(
            {
                "resourceType": "Observation",
                "id": self._id("Observation"),
                "status": "final",
                "category": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/observation-category",
                        "vital-signs",
                        "Vital Signs",
                    )
                ],
                "code": _coding(LOINC, "85354-9", "Blood pressure panel with all children optional"),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", eid),
                "effectiveDateTime": self._when(when),
                "component": [
                    comp("8480-6", "Systolic blood pressure", systolic),
                    comp("8462-4", "Diastolic blood pressure", diastolic),
                ],
            },
            [],
        )

    def procedure(
        self, pid: str, eid: str, when: dt.datetime, code: str, display: str, doctor: Person
    ) -> None:
        """Add a completed Procedure (SNOMED)."""
        self._add(
            {
                "resourceType": "Procedure",
                "id": self._id("Procedure"),
                "status": "completed",
                "code": _coding(SCT, code, display),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", eid),
                "performedDateTime": self._when(when),
                "performer": [{"actor": {"display": f"Dr. {doctor.full}"}}],
            },
            doctor.phi("physician", "Procedure.performer", full=True),
        )

    def medication(self, pid: str, eid: str, when: dt.datetime, condition: str, doctor: Person) -> None:
        """Add a MedicationRequest (RxNorm) treating ``condition``."""
        code, display = MEDICATIONS[condition]
        self._add(
            {
                "resourceType": "MedicationRequest",
                "id": self._id("MedicationRequest"),
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": _coding(RXNORM, code, display),
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", eid),
                "authoredOn": self._when(when),
                "requester": {"display": f"Dr. {doctor.full}"},
                "reasonCode": [_coding(SCT, condition, CONDITIONS[condition])],
                "dosageInstruction": [{"text": "Take as directed"}],
            },
            doctor.phi("physician", "MedicationRequest.requester", full=True),
        )

    def imaging_study(
        self, pid: str, eid: str, study: dict[str, Any], when: dt.datetime, referrer: Person
    ) -> None:
        """Add an ImagingStudy whose identifier is the DICOM StudyInstanceUID."""
        series = list(study["series"]) + ([study["seg"]] if study.get("seg") else [])
        modalities = sorted({s["modality"] for s in series})
        code, display = IMAGING_PROCEDURES[study["modality"]]
        self._add(
            {
                "resourceType": "ImagingStudy",
                "id": self._id("ImagingStudy"),
                "status": "available",
                "identifier": [
                    {"system": "urn:dicom:uid", "value": f"urn:oid:{study['study_instance_uid']}"},
                    {"type": _coding(V2_0203, "ACSN", "Accession ID"), "value": study["accession_number"]},
                ],
                "modality": [{"system": DCM, "code": m} for m in modalities],
                "subject": _ref("Patient", pid),
                "encounter": _ref("Encounter", eid),
                "started": self._when(when),
                "referrer": {"display": f"Dr. {referrer.full}"},
                "numberOfSeries": len(series),
                "numberOfInstances": sum(s["instance_count"] for s in series),
                "procedureCode": [_coding(SCT, code, display)],
                "description": study["study_description"],
                "series": [
                    {
                        "uid": s["series_instance_uid"],
                        "number": s["series_number"],
                        "modality": {"system": DCM, "code": s["modality"]},
                        "description": s["series_description"],
                        "numberOfInstances": s["instance_count"],
                        "bodySite": BODY_SITE,
                    }
                    for s in series
                ],
            },
            [
                (study["study_instance_uid"], "study_uid", "ImagingStudy.identifier"),
                (study["accession_number"], "accession_number", "ImagingStudy.identifier"),
                *referrer.phi("physician", "ImagingStudy.referrer", full=True),
            ]
            + [(s["series_instance_uid"], "series_uid", "ImagingStudy.series") for s in series],
        )

    def write(self, folder: Path) -> dict[str, int]:
        """Write one ``<Type>.ndjson`` per resource type; return counts."""
        folder.mkdir(parents=True, exist_ok=True)
        counts = {}
        for kind, items in self.resources.items():
            lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in items]
            (folder / f"{kind}.ndjson").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            counts[kind] = len(items)
        return counts
