"""OMOP conformance (issue 12), on SQLite and PostgreSQL: cdm_source, note_nlp.offset, ethnicity, NUMERIC.

The OHDSI Data Quality Dashboard refuses an empty ``cdm_source``; the official DDL names NOTE_NLP's
column ``offset`` (quoted only because it is a reserved word) and makes 25 columns NUMERIC; the
CDC ethnicity codes belong in ``ethnicity_concept_id``, never in ``race_concept_id``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from site_node.clinical.omop.schema import cdm_table
from site_node.clinical.omop.spec import load_spec
from site_node.home import open_site
from tests.conftest import run_site_cli as _run
from tests.site_node.clinical.conftest import omop_rows, patient, write_ndjson

_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
_CDC = "urn:oid:2.16.840.1.113883.6.238"


def _omb(url: str, *codes: str) -> dict[str, Any]:
    return {
        "url": url,
        "extension": [{"url": "ombCategory", "valueCoding": {"system": _CDC, "code": c}} for c in codes]
        + [{"url": "text", "valueString": "as recorded"}],
    }


def _patient(pid: str, *extensions: dict[str, Any]) -> dict[str, Any]:
    res = patient(pid, f"MRN-{pid}")
    res["extension"] = list(extensions)
    return res


def _cdm_source(home: Path) -> list[dict[str, Any]]:
    return omop_rows(home, "cdm_source")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def test_cdm_source_filled_at_init_and_refreshed_by_each_ingest(
    clinical_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (row,) = _cdm_source(clinical_home)
    assert row["cdm_source_name"] == row["cdm_source_abbreviation"] == row["cdm_holder"] == "site-a"
    assert row["cdm_version"] == "v5.4" and row["cdm_version_concept_id"] == 756265
    assert row["vocabulary_version"] == "fedimaging seed v1"
    assert row["cdm_release_date"] == row["source_release_date"] == _today()
    site = open_site(clinical_home)
    source, vocabulary = cdm_table("cdm_source"), cdm_table("vocabulary")
    with site.engine.begin() as conn:
        conn.execute(
            source.update().values(
                cdm_release_date=dt.date(2000, 1, 1), source_release_date=dt.date(2000, 1, 1)
            )
        )
        conn.execute(
            vocabulary.update()
            .where(vocabulary.c.vocabulary_id == "None")
            .values(vocabulary_version="v5.0 30-AUG-24")
        )
    write_ndjson(tmp_path / "in" / "Patient.ndjson", [_patient("c1")])
    assert (
        _run(["fhir", str(tmp_path / "in"), "--home", str(clinical_home), "--workers", "1"], capsys)[0] == 0
    )
    (row,) = _cdm_source(clinical_home)
    assert row["cdm_release_date"] == row["source_release_date"] == _today()
    assert row["vocabulary_version"] == "v5.0 30-AUG-24"  # read from the VOCABULARY table


def test_ethnicity_codes_go_to_ethnicity_never_to_race(
    clinical_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "e1": ([_omb(_RACE, "2106-3"), _omb(_ETHNICITY, "2135-2")], 8527, 38003563),
        "e2": ([_omb(_RACE, "2135-2")], 0, 38003563),  # an export that put ethnicity in the race extension
        "e3": ([_omb(_RACE, "2054-5"), _omb(_ETHNICITY, "2186-5")], 8516, 38003564),
        "e4": ([_omb(_RACE, "2186-5", "2028-9")], 8515, 38003564),
        "e5": ([_omb(_ETHNICITY, "2106-3")], 0, 0),  # a race code in the ethnicity extension: not ethnicity
    }
    write_ndjson(
        tmp_path / "in" / "Patient.ndjson", [_patient(pid, *ext) for pid, (ext, _, _) in cases.items()]
    )
    code, _, err = _run(
        ["fhir", str(tmp_path / "in"), "--home", str(clinical_home), "--workers", "1"], capsys
    )
    assert code == 0, err
    site = open_site(clinical_home)
    from site_node.clinical.fhir.base import patient_ref_key
    from site_node.clinical.omop.schema import clinical_patient

    pz = site.pseudonymizer()
    person = cdm_table("person")
    with site.engine.connect() as conn:
        for pid, (_, race, ethnicity) in cases.items():
            person_id = conn.execute(
                sa.select(clinical_patient.c.person_id).where(
                    clinical_patient.c.ref_key == patient_ref_key(pz, f"Patient/{pid}")
                )
            ).scalar_one()
            got = conn.execute(
                sa.select(person.c.race_concept_id, person.c.ethnicity_concept_id).where(
                    person.c.person_id == person_id
                )
            ).one()
            assert tuple(got) == (race, ethnicity), pid
    code, out, _ = _run(["omop", "report", "--home", str(clinical_home), "--json"], capsys)
    check = json.loads(out)["conformance"]
    assert check["ethnicity"]["persons_with_ethnicity_concept_in_race"] == 0
    assert check["ethnicity"]["persons_by_ethnicity_concept_id"] == {"0": 1, "38003563": 2, "38003564": 2}
    assert check["ok"] is True


def test_report_confirms_offset_column_and_numeric_types(
    clinical_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = open_site(clinical_home)
    inspector = sa.inspect(site.engine)
    names = [c["name"] for c in inspector.get_columns("note_nlp")]
    assert "offset" in names and '"offset"' not in names
    floats = [f for f in load_spec() if f.datatype == "float"]
    assert len(floats) == 25  # as the official DDL: every one NUMERIC
    for field in floats:
        column = next(c for c in inspector.get_columns(field.table) if c["name"] == field.name)
        assert isinstance(column["type"], sa.Numeric) and not isinstance(column["type"], sa.Float), field
    code, out, _ = _run(["omop", "report", "--home", str(clinical_home)], capsys)
    assert code == 0
    assert "note_nlp offset column: offset" in out and "NUMERIC columns as in the DDL: yes" in out
    assert "cdm_source: site-a CDM v5.4 (concept 756265)" in out and "conformance: ok" in out


def _make_it_look_old(site: Any) -> None:
    """Give a fresh database the shape an earlier release made (revision 0003)."""
    engine = site.engine
    quote = engine.dialect.identifier_preparer.quote_identifier
    concept = cdm_table("concept")
    with engine.begin() as conn:
        conn.execute(sa.delete(cdm_table("cdm_source")))
        conn.execute(sa.delete(concept).where(concept.c.concept_id == 756265))
        conn.exec_driver_sql(
            f"ALTER TABLE note_nlp RENAME COLUMN {quote('offset')} TO {quote(chr(34) + 'offset' + chr(34))}"
        )
        conn.exec_driver_sql("DROP TABLE site_key_check")
        conn.exec_driver_sql("ALTER TABLE outbound_ledger DROP COLUMN completed_at")
        if engine.dialect.name == "sqlite":
            for table in ("location", "measurement"):  # a parent (person.location_id) and a child table
                sql = conn.exec_driver_sql(
                    f"SELECT sql FROM sqlite_master WHERE name = '{table}'"
                ).scalar_one()
                conn.exec_driver_sql(f"CREATE TABLE old_{table} AS SELECT * FROM {table}")
                conn.exec_driver_sql(f"DROP TABLE {table}")
                conn.exec_driver_sql(sql.replace(" NUMERIC", " FLOAT"))
                conn.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM old_{table}")
                conn.exec_driver_sql(f"DROP TABLE old_{table}")
        else:
            for table, column in (("location", "latitude"), ("measurement", "value_as_number")):
                conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE double precision")
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0003'")


def test_migration_upgrades_a_database_of_an_earlier_release(clinical_home: Path) -> None:
    site = open_site(clinical_home)
    location, person, measurement = cdm_table("location"), cdm_table("person"), cdm_table("measurement")
    with site.engine.begin() as conn:
        conn.execute(location.insert().values(location_id=7, latitude=52.52))
        conn.execute(
            person.insert().values(
                person_id=11,
                gender_concept_id=0,
                year_of_birth=1970,
                race_concept_id=0,
                ethnicity_concept_id=0,
                location_id=7,
            )
        )
        conn.execute(
            measurement.insert().values(
                measurement_id=5,
                person_id=11,
                measurement_concept_id=0,
                measurement_date=dt.date(2020, 1, 2),
                measurement_type_concept_id=32817,
                value_as_number=98.6,
            )
        )
    _make_it_look_old(site)
    inspector = sa.inspect(site.engine)
    assert isinstance(
        next(c for c in inspector.get_columns("measurement") if c["name"] == "value_as_number")["type"],
        sa.Float,
    )
    site.engine.dispose()

    site = open_site(clinical_home)  # upgrades, fills cdm_source, records the key check value again
    from site_node.clinical.omop.conformance import conformance
    from site_node.keycheck import stored_check_values

    check = conformance(site.engine)
    assert check["ok"] is True, check
    assert check["note_nlp_offset_column"] == "offset" and len(check["cdm_source"]) == 1
    with site.engine.connect() as conn:
        assert conn.execute(sa.select(measurement.c.value_as_number)).scalar_one() == pytest.approx(98.6)
        assert conn.execute(sa.select(location.c.latitude)).scalar_one() == pytest.approx(52.52)
        assert conn.execute(sa.select(person.c.location_id)).scalar_one() == 7
        ledger_columns = {c["name"] for c in sa.inspect(conn).get_columns("outbound_ledger")}
    assert "completed_at" in ledger_columns
    assert all(stored_check_values(site.settings, site.engine).values())
