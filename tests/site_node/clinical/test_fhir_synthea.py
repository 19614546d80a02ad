"""The real Synthea sample: every Patient becomes a PERSON, counts match, no PHI reaches the database."""

from __future__ import annotations

import base64
import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from site_node.clinical.fhir.ingest import IngestSummary, ingest_fhir
from site_node.clinical.omop.schema import cdm_table
from site_node.home import open_site
from tests.site_node.clinical.conftest import SYNTHEA

pytestmark = [
    pytest.mark.skipif(not SYNTHEA.is_dir(), reason="shared Synthea sample not present"),
    pytest.mark.slow,
]


def _resources(kind: str) -> list[dict]:
    path = SYNTHEA / f"{kind}.000.ndjson"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def expected_counts() -> Counter[str]:
    """Rows each OMOP table should get, computed from the input resources."""
    out: Counter[str] = Counter()
    patients = _resources("Patient")
    out["person"] = len(patients)
    out["death"] = sum(1 for p in patients if p.get("deceasedDateTime"))
    out["visit_occurrence"] = sum(1 for e in _resources("Encounter") if (e.get("period") or {}).get("start"))
    out["condition_occurrence"] = sum(
        1
        for c in _resources("Condition")
        if c.get("onsetDateTime") or c.get("onsetPeriod") or c.get("recordedDate")
    )
    out["procedure_occurrence"] = sum(
        1
        for p in _resources("Procedure")
        if p.get("performedDateTime") or (p.get("performedPeriod") or {}).get("start")
    )
    out["drug_exposure"] = sum(1 for m in _resources("MedicationRequest") if m.get("authoredOn")) + sum(
        1 for i in _resources("Immunization") if i.get("occurrenceDateTime")
    )
    out["observation"] = sum(
        1
        for a in _resources("AllergyIntolerance")
        if a.get("onsetDateTime") or a.get("onsetPeriod") or a.get("recordedDate") or a.get("lastOccurrence")
    )
    return out


def phi_values() -> set[str]:
    """Names, addresses, phones, identifiers and note sentences of the input."""
    values: set[str] = set()
    for p in _resources("Patient"):
        for name in p.get("name", []):
            values.update(name.get("given", []))
            values.add(name.get("family", ""))
        values.update(t["value"] for t in p.get("telecom", []))
        for addr in p.get("address", []):
            values.update(addr.get("line", []))
            values.update([addr.get("city", ""), addr.get("postalCode", "")])
        values.update(i["value"] for i in p.get("identifier", []))
    for doc in _resources("DocumentReference")[:200]:
        for content in doc.get("content", []):
            data = content.get("attachment", {}).get("data")
            if data:
                note = base64.b64decode(data).decode("utf-8", "replace")
                values.update(line.strip() for line in note.splitlines() if len(line.strip()) > 25)
    for enc in _resources("Encounter"):
        for part in enc.get("participant", []):
            values.add(part.get("individual", {}).get("display", ""))
    # 5-digit postal codes also occur as vocabulary codes (e.g. RxNorm), so bare short numbers are left out
    return {v for v in values if v and len(v) >= 5 and not (v.isdigit() and len(v) < 8)}


def _db_bytes(home: Path) -> bytes:
    from site_node.db import get_engine

    site = open_site(home, upgrade=False)
    with site.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    get_engine(site.settings.database_url).dispose()
    return b"".join(p.read_bytes() for p in home.glob("site.db*"))


def _counts(home: Path) -> Counter[str]:
    site = open_site(home, upgrade=False)
    with site.engine.connect() as conn:
        return Counter(
            {
                name: conn.execute(select(func.count()).select_from(cdm_table(name))).scalar()
                for name in expected_counts()
            }
        )


class _Collect(logging.Handler):
    """Keeps every rendered log message (to scan for PHI)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(self.format(record))


@pytest.fixture(scope="module")
def synthea_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestSummary, str]:
    """The Synthea sample ingested once (SQLite, two worker processes), with the run's log text."""
    from site_node.home import init_home

    home = tmp_path_factory.mktemp("synthea") / "site"
    init_home(home, "site-a")
    handler, root = _Collect(), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        site = open_site(home)
        summary = ingest_fhir(site, [SYNTHEA], workers=2)
        from site_node.clinical.omop.report import build_report

        build_report(site.engine)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return home, summary, "\n".join(handler.messages)


def _check_counts(home: Path, summary: IngestSummary) -> None:
    expected = expected_counts()
    assert _counts(home) == expected
    assert summary.rows == expected
    assert summary.quarantined == Counter()
    assert summary.files_ignored == 2  # the export's log.ndjson and the LICENSE file
    assert summary.not_mapped_types["DocumentReference"] == len(_resources("DocumentReference"))
    site = open_site(home, upgrade=False)
    with site.engine.connect() as conn:
        periods = conn.execute(select(func.count()).select_from(cdm_table("observation_period"))).scalar()
    assert periods == expected["person"]


def test_synthea_every_patient_becomes_a_person_and_counts_match(synthea_site) -> None:  # type: ignore[no-untyped-def]
    home, summary, _ = synthea_site
    _check_counts(home, summary)


@pytest.mark.postgres
def test_synthea_counts_on_postgres(tmp_path: Path) -> None:
    from site_node.home import init_home
    from tests.site_node.clinical.conftest import _fresh_postgres

    urls = _fresh_postgres()
    url = next(urls)
    try:
        home = tmp_path / "site"
        init_home(home, "site-a", db_url=url)
        summary = ingest_fhir(open_site(home), [SYNTHEA], workers=1)
        _check_counts(home, summary)
    finally:
        urls.close()


def test_no_phi_in_database_or_logs(synthea_site) -> None:  # type: ignore[no-untyped-def]
    home, _, log_text = synthea_site
    blob = _db_bytes(home)
    values = phi_values()
    assert len(values) > 100
    assert [v for v in values if v.encode() in blob] == []
    assert [v for v in values if v in log_text] == []


def test_synthea_rerun_adds_nothing_and_resumes(synthea_site) -> None:  # type: ignore[no-untyped-def]
    home, _, _ = synthea_site  # runs last in this module: it rewrites the journal
    site = open_site(home)
    before = _counts(home)
    again = ingest_fhir(site, [SYNTHEA], workers=1)
    assert again.files == 0 and not again.rows and again.files_skipped > 0
    with site.engine.begin() as conn:  # as if killed before the files were journalled
        conn.execute(text("DELETE FROM ingest_journal"))
    resumed = ingest_fhir(site, [SYNTHEA], workers=1)
    assert not resumed.rows and resumed.unchanged == sum(before.values()) - before["death"]
    assert _counts(home) == before
