"""Fixtures of the clinical-data tests: site homes on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA, fresh_postgres_database

SYNTHEA = SHARED_DATA / "fhir" / "synthea-10"
MRN_SYSTEM = "http://hospital.example.org/mrn"


def _fresh_postgres() -> Iterator[str]:
    yield from fresh_postgres_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite in the home) or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    yield from _fresh_postgres()


@pytest.fixture
def clinical_home(tmp_path: Path, db_url: str | None) -> Path:
    """An initialised site home whose MRN system is :data:`MRN_SYSTEM`."""
    from site_node.home import init_home

    home = tmp_path / "site"
    init_home(home, "site-a", db_url=db_url, mrn_system=MRN_SYSTEM)
    return home


@pytest.fixture
def sqlite_home(tmp_path: Path) -> Path:
    """An initialised SQLite site home."""
    from site_node.home import init_home

    home = tmp_path / "site"
    init_home(home, "site-a", mrn_system=MRN_SYSTEM)
    return home


def omop_rows(home: Path, table: str) -> list[dict[str, Any]]:
    """Every row of an OMOP table of the site at ``home``, as column -> value."""
    from sqlalchemy import select

    from site_node.clinical.omop.schema import cdm_table
    from site_node.home import open_site

    site = open_site(home, upgrade=False)
    with site.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(cdm_table(table)))]


def patient(
    pid: str,
    mrn: str,
    *,
    family: str = "Testfamily",
    birth: str = "1960-04-02",
    gender: str = "female",
    deceased: str | None = None,
) -> dict:
    """A minimal R4 Patient with an MRN, a name, a phone and an address."""
    res = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {
                "system": MRN_SYSTEM,
                "value": mrn,
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
            },
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"},
        ],
        "name": [{"family": family, "given": ["Quintessa"]}],
        "telecom": [{"system": "phone", "value": "555-867-5309"}],
        "address": [{"line": ["42 Wallaby Way"], "city": "Sydneyville"}],
        "gender": gender,
        "birthDate": birth,
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Quintessa Testfamily</div>',
        },
    }
    if deceased:
        res["deceasedDateTime"] = deceased
    return res


def observation(
    oid: str,
    pid: str,
    loinc: str,
    value: float,
    unit: str,
    when: str = "2021-03-04T10:00:00Z",
    **extra: object,
) -> dict:
    """A vital-signs Observation with a valueQuantity."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        **extra,
    }


def write_ndjson(path: Path, resources: list[dict]) -> Path:
    """Write resources one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in resources))
    return path
