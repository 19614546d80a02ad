"""Independent FHIR R4 inputs for the audit, shaped like non-Synthea exports (EHR bulk export, HAPI clients).

Built in code: ndjson with CRLF / BOM / blank lines, gzip-compressed ndjson, a transaction Bundle with
``urn:uuid`` fullUrls and resources without ids, absolute and relative references, contained resources,
identifiers without a type, and free text (names, addresses, phones) in every place a record has it.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

MRN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

#: Identifying values planted in the inputs; none may reach the database or the logs.
PHI = {
    "family1": "Delacroixfenwick",
    "given1": "Marguerite",
    "maiden1": "Thistlewaite",
    "nick1": "Maggiebell",
    "mrn1": "E7734021",
    "ssn1": "999-12-3456",
    "phone1": "555-867-5309",
    "email1": "mdelacroix@example.org",
    "street1": "1200 Larkspur Avenue",
    "city1": "Thornburyville",
    "family2": "Quintanillaoye",
    "given2": "Bartholomew",
    "mrn2": "HX99120034",
    "street2": "88 Gallowmere Close",
    "family3": "Nakagawarabe",
    "given3": "Hiroshiko",
    "mrn3": "Q0001234567",
    "gp": "Wolfsbanedoc",
    "note_name": "Ophelianurse",
    "lot": "LOTSECRET77",
    "room": "Bedroomtwelve",
}


def _patient1() -> dict[str, Any]:
    p = PHI
    return {
        "resourceType": "Patient",
        "id": "pat-1001",
        "meta": {"profile": [US_CORE + "us-core-patient"]},
        "extension": [
            {
                "url": US_CORE + "us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2106-3",
                            "display": "White",
                        },
                    },
                    {"url": "text", "valueString": "White"},
                ],
            },
            {
                "url": US_CORE + "us-core-ethnicity",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2186-5"},
                    },
                    {"url": "text", "valueString": "Not Hispanic or Latino"},
                ],
            },
            {"url": US_CORE + "us-core-birthsex", "valueCode": "F"},
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {"city": p["city1"], "country": "US"},
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                "valueString": p["maiden1"],
            },
        ],
        # no type on the MRN: only the configured system says which identifier it is
        "identifier": [
            {"use": "usual", "system": MRN_SYSTEM, "value": p["mrn1"]},
            {
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": p["ssn1"],
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]
                },
            },
        ],
        "active": True,
        "name": [
            {"use": "official", "family": p["family1"], "given": [p["given1"], "Q"], "prefix": ["Mrs."]},
            {"use": "maiden", "family": p["maiden1"], "given": [p["given1"]]},
            {"use": "nickname", "given": [p["nick1"]]},
        ],
        "telecom": [
            {"system": "phone", "value": p["phone1"], "use": "home"},
            {"system": "email", "value": p["email1"]},
            {"system": "phone", "value": "555-000-1111", "use": "work"},
        ],
        "gender": "female",
        "birthDate": "1948-02-29",
        "deceasedDateTime": "2023-05-04T10:15:00-05:00",
        "address": [
            {
                "use": "home",
                "line": [p["street1"], "Apt 4"],
                "city": p["city1"],
                "state": "MA",
                "postalCode": "02139",
            },
            {"use": "old", "line": ["PO Box 7731"], "city": p["city1"], "state": "MA"},
        ],
        "maritalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "W"}]
        },
        "generalPractitioner": [{"reference": "Practitioner/prac-9", "display": f"Dr. {p['gp']}"}],
    }


def _patient3() -> dict[str, Any]:
    p = PHI
    return {
        "resourceType": "Patient",
        "id": "123",
        "identifier": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
                "system": "urn:oid:2.16.99.1",
                "value": p["mrn3"],
            }
        ],
        "name": [{"text": f"{p['given3']} {p['family3']}"}],
        "gender": "male",
        "birthDate": "1970",
    }


def _obs(oid: str, subject: str, **extra: Any) -> dict[str, Any]:
    base = {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": subject}}
    base.update(extra)
    return base


def observations(subject: str) -> list[dict[str, Any]]:
    """Observations with every value shape."""
    p = PHI
    lab = [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
            ]
        }
    ]
    vitals = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ]
    return [
        _obs(
            "obs-a1c",
            subject,
            category=lab,
            code={"coding": [{"system": LOINC, "code": "4548-4"}]},
            effectiveDateTime="2022-01-10T08:00:00+01:00",
            valueQuantity={"value": 7.1, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
            note=[{"text": f"drawn by {p['note_name']} for {p['given1']} {p['family1']}"}],
        ),
        _obs(
            "obs-bp",
            subject,
            category=vitals,
            code={"coding": [{"system": LOINC, "code": "85354-9"}]},
            effectivePeriod={"start": "2022-01-10T08:05:00Z", "end": "2022-01-10T08:10:00Z"},
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": {"value": 141, "unit": "mmHg"},
                },  # no system, no code
                {
                    "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                    "valueQuantity": {"value": 92, "unit": "mmHg"},
                },
            ],
        ),
        _obs(
            "obs-smoke",
            subject,
            category=[{"coding": [{"code": "social-history"}]}],
            code={"coding": [{"system": LOINC, "code": "72166-2"}]},
            effectiveDateTime="2022-01-10",
            valueCodeableConcept={"coding": [{"system": SNOMED, "code": "8517006"}], "text": "Former smoker"},
        ),
        _obs(
            "obs-string",
            subject,
            code={"coding": [{"system": LOINC, "code": "8691-8"}]},
            effectiveDateTime="2022-01-11",
            valueString=f"Travelled with {p['given1']} {p['family1']} to {p['city1']}",
        ),
        _obs(
            "obs-absent",
            subject,
            category=lab,
            code={"coding": [{"system": LOINC, "code": "2339-0"}]},
            effectiveDateTime="2022-01-12",
            dataAbsentReason={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": "not-performed",
                    }
                ]
            },
        ),
    ]


def clinical(subject: str, encounter: str | None) -> list[dict[str, Any]]:
    """Encounter, Condition, Procedure, medications, Immunization, reports, notes, allergy."""
    p = PHI
    enc_ref = {"reference": encounter} if encounter else None
    note_text = f"{p['given1']} {p['family1']} seen at {p['street1']}, phone {p['phone1']}."
    b64 = base64.b64encode(note_text.encode()).decode()
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Encounter",
            "id": "enc-1",
            "status": "finished",
            "class": {"system": ACT, "code": "IMP", "display": "inpatient encounter"},
            "subject": {"reference": subject},
            "participant": [{"individual": {"reference": "Practitioner/prac-9", "display": p["gp"]}}],
            "period": {"start": "2022-01-09T22:00:00+01:00", "end": "2022-01-14T11:00:00+01:00"},
            "hospitalization": {"dischargeDisposition": {"coding": [{"code": "home"}]}},
            "location": [{"location": {"display": f"Ward 7 {p['room']}"}}],
        },
        {
            "resourceType": "Condition",
            "id": "cond-1",
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}
                ]
            },
            "code": {"coding": [{"system": SNOMED, "code": "233604007"}], "text": "Pneumonia"},
            "subject": {"reference": subject},
            "onsetPeriod": {"start": "2022-01-08", "end": "2022-01-09"},
            "abatementDateTime": "2022-02-01",
            "note": [{"text": f"reported by {p['note_name']}"}],
        },
        {
            "resourceType": "Procedure",
            "id": "proc-1",
            "status": "completed",
            "code": {"coding": [{"system": SNOMED, "code": "399208008"}]},
            "subject": {"reference": subject},
            "performedPeriod": {"start": "2022-01-10T09:00:00+01:00", "end": "2022-01-10T09:20:00+01:00"},
        },
        {
            "resourceType": "MedicationStatement",
            "id": "ms-1",
            "status": "active",
            "contained": [
                {
                    "resourceType": "Medication",
                    "id": "med1",
                    "code": {"coding": [{"system": RXNORM, "code": "860975"}]},
                }
            ],
            "medicationReference": {"reference": "#med1"},
            "subject": {"reference": subject},
            "effectivePeriod": {"start": "2021-06-01", "end": "2022-06-01"},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "mr-1",
            "status": "active",
            "intent": "order",
            "contained": [
                {
                    "resourceType": "Medication",
                    "id": "med2",
                    "code": {"coding": [{"system": RXNORM, "code": "197361"}]},
                }
            ],
            "medicationReference": {"reference": "#med2"},
            "subject": {"reference": subject},
            "authoredOn": "2022-01-10",
            "dosageInstruction": [{"text": f"give to {p['given1']} nightly"}],
        },
        {
            "resourceType": "Immunization",
            "id": "imm-1",
            "status": "completed",
            "vaccineCode": {"coding": [{"system": CVX, "code": "140"}]},
            "patient": {"reference": subject},
            "occurrenceDateTime": "2021-10-01",
            "lotNumber": p["lot"],
            "performer": [{"actor": {"display": p["note_name"]}}],
        },
        {
            "resourceType": "DiagnosticReport",
            "id": "dr-1",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "24627-2"}]},
            "subject": {"reference": subject},
            "effectiveDateTime": "2022-01-10",
            "conclusion": f"no change, discussed with {p['family1']}",
            "presentedForm": [{"contentType": "text/plain", "data": b64}],
        },
        {
            "resourceType": "DocumentReference",
            "id": "doc-1",
            "status": "current",
            "type": {"coding": [{"system": LOINC, "code": "34117-2"}]},
            "subject": {"reference": subject},
            "author": [{"display": p["note_name"]}],
            "content": [{"attachment": {"contentType": "text/plain", "data": b64}}],
        },
        {
            "resourceType": "AllergyIntolerance",
            "id": "al-1",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": SNOMED, "code": "91936005"}]},
            "patient": {"reference": subject},
            "recordedDate": "2020-03-03",
            "note": [{"text": f"told by {p['given1']}"}],
        },
    ]
    if enc_ref:
        for res in out[2:]:
            if res["resourceType"] in ("Procedure", "DiagnosticReport"):
                res["encounter"] = enc_ref
    return out


def transaction_bundle() -> dict[str, Any]:
    """A client-built transaction: urn:uuid fullUrls, resources without ids, POST requests."""
    p = PHI
    pat_url = "urn:uuid:6f1c9a52-9a43-4d0e-9c1b-1f7a4b5e0a01"
    enc_url = "urn:uuid:0b6f2f1e-3e0c-4a7c-8d4e-5b2a9f6c1d02"
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
                "system": "urn:oid:2.16.840.1.113883.3.999",
                "value": p["mrn2"],
            }
        ],
        "name": [{"family": p["family2"], "given": [p["given2"]]}],
        "address": [{"line": [p["street2"]]}],
        "gender": "male",
        "birthDate": "1985-07-14",
    }
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT, "code": "AMB"},
        "subject": {"reference": pat_url},
        "period": {"start": "2023-03-01T10:00:00Z", "end": "2023-03-01T10:30:00Z"},
    }
    condition = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
        "subject": {"reference": pat_url},
        "encounter": {"reference": enc_url},
        "onsetDateTime": "2023-03-01",
    }
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "subject": {"reference": pat_url},
        "encounter": {"reference": enc_url},
        "effectiveDateTime": "2023-03-01T10:05:00Z",
        "valueQuantity": {"value": 81.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }
    entries = []
    for url, res in (
        (pat_url, patient),
        (enc_url, encounter),
        ("urn:uuid:0b6f2f1e-3e0c-4a7c-8d4e-5b2a9f6c1d03", condition),
        ("urn:uuid:0b6f2f1e-3e0c-4a7c-8d4e-5b2a9f6c1d04", obs),
    ):
        entries.append(
            {"fullUrl": url, "resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _ndjson(
    resources: list[dict[str, Any]], crlf: bool = False, bom: bool = False, blanks: bool = False
) -> bytes:
    sep = "\r\n" if crlf else "\n"
    lines = []
    for res in resources:
        lines.append(json.dumps(res))
        if blanks:
            lines.append("")
    text = sep.join(lines) + sep
    data = text.encode()
    return (b"\xef\xbb\xbf" + data) if bom else data


def write_export(root: Path) -> dict[str, Path]:
    """Write the audit export under ``root``; returns its files by role."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    # Patient.ndjson: CRLF, a BOM, blank lines (Windows-side tooling)
    files["patients"] = root / "Patient.ndjson"
    files["patients"].write_bytes(_ndjson([_patient1(), _patient3()], crlf=True, bom=True, blanks=True))
    abs_ref = "https://ehr.example.org/fhir/R4/Patient/123"
    files["observations"] = root / "Observation.ndjson"
    files["observations"].write_bytes(_ndjson(observations("Patient/pat-1001"), crlf=True))
    files["clinical"] = root / "Clinical.ndjson"
    files["clinical"].write_bytes(_ndjson(clinical("Patient/pat-1001", "Encounter/enc-1")))
    files["absolute"] = root / "Condition.ndjson"
    files["absolute"].write_bytes(
        _ndjson(
            [
                {
                    "resourceType": "Condition",
                    "id": "cond-abs",
                    "code": {"coding": [{"system": SNOMED, "code": "38341003"}]},
                    "subject": {"reference": abs_ref},
                    "onsetDateTime": "2019-05-05",
                }
            ]
        )
    )
    files["bundle"] = root / "transaction.json"
    files["bundle"].write_text(json.dumps(transaction_bundle()))
    files["gzip"] = root / "Observation_2.ndjson.gz"
    files["gzip"].write_bytes(
        gzip.compress(
            _ndjson(
                [
                    _obs(
                        "obs-gz",
                        "Patient/123",
                        category=[{"coding": [{"code": "laboratory"}]}],
                        code={"coding": [{"system": LOINC, "code": "2345-7"}]},
                        effectiveDateTime="2020-02-02",
                        valueQuantity={"value": 5.4, "unit": "mmol/L"},
                    )
                ]
            )
        )
    )
    return files


#: Bad records, with the field their reason must name. The Patient with a free-text gender is kept
#: (gender concept 0, NULL source value) and counted under ``invalid_codes`` as ``Patient.gender``.
BAD_LINES: list[tuple[dict[str, Any] | str, str]] = [
    (
        {
            "resourceType": "Observation",
            "id": "bad-1",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/pat-1001"},
            "effectiveDateTime": f"tuesday {PHI['given1']}",
        },
        "effectiveDateTime",
    ),
    (
        {
            "resourceType": "Patient",
            "id": "bad-2",
            "gender": f"{PHI['family1']}",
            "identifier": [{"system": MRN_SYSTEM, "value": "E0000009"}],
            "birthDate": "1950-01-01",
        },
        "gender",
    ),
    (f'{{"resourceType": "Patient", "name": "{PHI["family1"]}", ', "json"),
]


def write_bad(root: Path) -> Path:
    """An ndjson file of records that must be quarantined with a field path only."""
    path = root / "bad" / "Observation_bad.ndjson"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) if isinstance(r, dict) else r for r, _ in BAD_LINES]
    path.write_text("\n".join(lines) + "\n")
    return path
