"""The encrypted re-identification table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from common.crypto import Pseudonymizer
from common.errors import InputError, NotFoundError
from site_node.home import open_site
from site_node.reid import ReidTable


def test_record_and_lookup_round_trip(site_home: Path) -> None:
    site = open_site(site_home)
    pz = site.pseudonymizer()
    table = ReidTable(site.settings, pz)
    pseudonym = pz.patient("MRN-0001")
    table.record(pseudonym, "patient", {"PatientID": "MRN-0001", "PatientName": "Doe^Jane"})
    table.record(pseudonym, "patient", {"PatientID": "MRN-0001", "PatientName": "Doe^Jane"})  # idempotent
    table.record(pseudonym, "fhir", {"PatientID": "MRN-0001", "FhirId": "abc"})
    found = table.lookup(pseudonym)
    assert found["PatientID"] == "MRN-0001" and found["PatientName"] == "Doe^Jane"
    assert found["FhirId"] == "abc"
    db = site.settings.phi_dir / "reid.db"
    assert db.stat().st_mode & 0o777 == 0o600
    raw = db.read_bytes()
    assert b"MRN-0001" not in raw and b"Doe^Jane" not in raw
    assert sqlite3.connect(db).execute("SELECT count(*) FROM reid").fetchone()[0] == 2


def test_unknown_pseudonym_and_wrong_key(site_home: Path) -> None:
    site = open_site(site_home)
    pz = site.pseudonymizer()
    table = ReidTable(site.settings, pz)
    with pytest.raises(NotFoundError):
        table.lookup("PUNKNOWN")
    table.record("PX", "patient", {"PatientID": "MRN-9"})
    with pytest.raises(NotFoundError):
        table.lookup("PUNKNOWN")
    other = ReidTable(site.settings, Pseudonymizer(bytes(32)))
    with pytest.raises(InputError):
        other.lookup("PX")


def test_a_row_cannot_be_moved_to_another_pseudonym(site_home: Path) -> None:
    site = open_site(site_home)
    table = ReidTable(site.settings, site.pseudonymizer())
    table.record("PA", "patient", {"PatientID": "MRN-A"})
    table.record("PB", "patient", {"PatientID": "MRN-B"})
    db = site.settings.phi_dir / "reid.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE reid SET pseudonym = 'PB' WHERE pseudonym = 'PA'")
    with pytest.raises(InputError):
        table.lookup("PB")
