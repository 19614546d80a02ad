"""The ingest spine: journal, quarantine layout, worker pool, run record, pseudonymizer pickling."""

from __future__ import annotations

import json
import os
import pickle
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from common.crypto import Pseudonymizer, sha256_hex
from common.errors import ConflictError, NotFoundError
from site_node.db import ingest_journal, run_audit
from site_node.home import open_site
from site_node.ingest import (
    Journal,
    JournalEntry,
    Quarantine,
    SourceItem,
    ingest_run,
    iter_files,
    pool_results,
    source_pseudonym,
)
from tests.conftest import TEST_KEY


def test_pseudonymizer_pickles_itself_and_hides_its_key() -> None:
    pz = Pseudonymizer(TEST_KEY)
    clone = pickle.loads(pickle.dumps(pz))  # noqa: S301 - our own object, same process
    assert clone.patient("MRN-1") == pz.patient("MRN-1")
    assert TEST_KEY.hex() not in repr(pz)


def test_journal_counts_duplicates_and_skips(site_home: Path) -> None:
    site = open_site(site_home)
    journal = Journal(site.engine, "test", "run-1")
    entry = JournalEntry("Oname", "a" * 64, "written")
    assert journal.record(entry) == "written"
    assert journal.record(JournalEntry("Oother", "a" * 64, "written")) == "duplicate"  # same bytes
    journal.flush()
    again = Journal(site.engine, "test", "run-2")
    assert again.claim("a" * 64) == "skipped"
    assert again.claim("b" * 64) == "new" and again.claim("b" * 64) == "duplicate"
    # a second run writing the same hash (two runs at once) replaces the row instead of failing
    again.record(JournalEntry("Oname", "a" * 64, "quarantined", "bad"), claimed=True)
    again.done = frozenset()
    again.record(JournalEntry("Oname", "a" * 64, "quarantined", "bad"), claimed=True)
    again.flush()
    with site.engine.connect() as conn:
        rows = conn.execute(select(ingest_journal.c.outcome).where(ingest_journal.c.stage == "test")).all()
    assert [r[0] for r in rows] == ["quarantined"]


def test_quarantine_layout_is_content_addressed_and_private(tmp_path: Path) -> None:
    store = Quarantine(tmp_path / "quarantine")
    entry = store.put("fhir", b"raw record of Jane Doe", "validation_failed", field="Patient.birthDate")
    folder = tmp_path / "quarantine" / "fhir"
    assert sorted(p.name for p in folder.iterdir()) == [f"{entry.id}.bin", f"{entry.id}.json"]
    assert entry.id == sha256_hex(b"raw record of Jane Doe")[:32]
    for path in (tmp_path / "quarantine", folder):
        assert path.stat().st_mode & 0o777 == 0o700
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    record = json.loads((folder / f"{entry.id}.json").read_text())
    assert record["field"] == "Patient.birthDate" and "Jane" not in json.dumps(record)
    assert store.find(entry.id[:8]).id == entry.id
    assert store.read(entry) == b"raw record of Jane Doe"
    with pytest.raises(NotFoundError):
        store.find("0" * 12)
    store.put("dicom", b"raw record of Jane Doe", "not_dicom")  # same bytes, another stage
    with pytest.raises(ConflictError):
        store.find(entry.id[:8])
    assert store.find(entry.id[:8], stage="dicom").stage == "dicom"
    assert len(store.purge(older_than_days=1)) == 0
    assert len(store.purge()) == 2 and store.entries() == []


def test_source_items_from_files_and_memory(tmp_path: Path) -> None:
    (tmp_path / "Jane_Doe.ndjson").write_bytes(b"x")
    (tmp_path / ".partial-1-out").write_bytes(b"y")
    items = list(iter_files(tmp_path))
    assert [i.source_id for i in items] == ["Jane_Doe.ndjson"]
    assert SourceItem("pacs:1", data=b"z").read() == b"z"
    label = source_pseudonym(Pseudonymizer(TEST_KEY), "Jane_Doe.ndjson")
    assert label.startswith("O") and len(label) == 16 and "Jane" not in label


_OFFSET: dict[str, int] = {}


def _init(offset: int) -> None:
    _OFFSET["n"] = offset


def _square_or_die(n: int) -> int:
    if n == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return n * n + _OFFSET["n"]


@pytest.mark.parametrize("workers", [1, 2])
def test_pool_is_ordered_lazy_and_isolates_a_crash(workers: int) -> None:
    items = iter(range(20)) if workers > 1 else iter(i for i in range(20) if i != 7)
    results = list(pool_results(items, workers, _square_or_die, _init, (1,), lambda n: -n, ordered=True))
    expected = [-7 if n == 7 else n * n + 1 for n in range(20) if workers > 1 or n != 7]
    assert results == expected


def test_ingest_run_records_the_tally(site_home: Path) -> None:
    site = open_site(site_home)
    with ingest_run(site, "test", "test-ingest", {"workers": 1}) as run:
        run.journal.record(JournalEntry("Oa", "c" * 64, "quarantined", "not_dicom"))
        run.journal.record(JournalEntry("Oa", "c" * 64, "quarantined", "not_dicom"))
        run.counts["files"] = 2
    with site.engine.connect() as conn:
        counts = conn.execute(select(run_audit.c.counts).where(run_audit.c.run_id == run.run_id)).scalar_one()
    assert counts["outcomes"] == {"quarantined": 1, "duplicate": 1} and counts["files"] == 2
