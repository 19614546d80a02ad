"""CSV case-report form (one row per patient) and its column dictionary (TOML)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from site_node.synthetic.people import Patient
from site_node.synthetic.styles import NSCLC
from site_node.synthetic.truth import PhiRegistry

CRF_FILE = "crf/case_report_form.csv"
DICTIONARY_FILE = "crf/dictionary.toml"
COLUMNS = ("mrn", "assessment_date", "smoking_status", "pack_years", "ecog", "tumour_stage", "weight_kg")

DICTIONARY = """# Column dictionary of crf/case_report_form.csv (format: docs/synthetic.md).
[dictionary]
version = 1
patient_key = "mrn"
date_column = "assessment_date"
date_format = "%Y-%m-%d"
mrn_system = "{mrn_system}"
delimiter = ","

[columns.mrn]
role = "patient_key"
value_type = "string"
description = "Hospital medical record number (same as DICOM PatientID and FHIR MR identifier)"

[columns.assessment_date]
role = "date"
value_type = "string"
description = "Date of the CRF assessment (ISO 8601)"

[columns.smoking_status]
table = "observation"
concept_id = 0
source_value = "smoking_status"
unit = ""
value_type = "concept"
description = "Tobacco smoking status"

[columns.smoking_status.values]
never = 0
former = 0
current = 0

[columns.pack_years]
table = "observation"
concept_id = 0
source_value = "pack_years"
unit = "{{pack-years}}"
value_type = "number"
description = "Cumulative tobacco exposure in pack-years"

[columns.ecog]
table = "observation"
concept_id = 0
source_value = "ecog"
unit = ""
value_type = "number"
description = "ECOG performance status (0-4)"

[columns.tumour_stage]
table = "observation"
concept_id = 0
source_value = "tumour_stage"
unit = ""
value_type = "string"
description = "Clinical tumour stage (I-IV); empty when no cancer"

[columns.weight_kg]
table = "measurement"
concept_id = 3025315
source_value = "weight_kg"
unit = "kg"
unit_concept_id = 9529
value_type = "number"
description = "Body weight"
"""


def crf_row(
    rng: np.random.Generator, patient: Patient, assessment_date: str, weight: float
) -> dict[str, str]:
    """Draw the CRF variables of one patient."""
    status = ("never", "former", "current")[int(rng.choice(3, p=(0.35, 0.4, 0.25)))]
    pack_years = 0.0 if status == "never" else round(float(rng.uniform(5, 60)), 1)
    if NSCLC in patient.conditions:
        pack_years = max(pack_years, round(float(rng.uniform(20, 70)), 1)) if status != "never" else 0.0
    stage = ("I", "II", "III", "IV")[int(rng.integers(4))] if NSCLC in patient.conditions else ""
    return {
        "mrn": patient.mrn,
        "assessment_date": assessment_date,
        "smoking_status": status,
        "pack_years": f"{pack_years:.1f}",
        "ecog": str(int(rng.choice(5, p=(0.4, 0.3, 0.15, 0.1, 0.05)))),
        "tumour_stage": stage,
        "weight_kg": f"{weight:.1f}",
    }


def write_crf(out: Path, rows: list[dict[str, str]], mrn_system: str, phi: PhiRegistry) -> None:
    """Write the CSV form and its dictionary; record MRNs and dates as PHI."""
    (out / "crf").mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (out / CRF_FILE).write_text(buffer.getvalue(), encoding="utf-8")
    (out / DICTIONARY_FILE).write_text(DICTIONARY.format(mrn_system=mrn_system), encoding="utf-8")
    for row in rows:
        phi.add(row["mrn"], "mrn", CRF_FILE, "mrn")
        phi.add(row["assessment_date"], "date", CRF_FILE, "assessment_date")
