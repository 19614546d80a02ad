"""The site key check (issue 13): a lost, wrong or regenerated key is refused before it touches data.

The attack reproduced: the key file is lost, ``site-node init`` used to write a new key beside data
made with the old one, and ``deid`` / ``fhir`` ran under it (every patient got a second pseudonym)
while ``status`` said ``key: ok``. Now each of those stops with exit 78 and says what to do.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from common.crypto import Pseudonymizer, backup_key, restore_key, write_key
from common.errors import InputError, KeyMismatchError
from tests.conftest import fresh_postgres_database
from tests.conftest import run_site_cli as _run
from tests.site_node.clinical.conftest import MRN_SYSTEM, observation, patient, write_ndjson

PASSPHRASE = "correct horse battery staple"
#: A key whose every encoding is easy to search for (never a real site's key).
PLANTED_KEY = bytes.fromhex("5eed" * 4) + b"PLANTED-SITE-KEY" + bytes.fromhex("c0ffee00" * 2)


def _fhir_export(folder: Path) -> Path:
    write_ndjson(folder / "Patient.ndjson", [patient("p1", "MRN-KEY-1"), patient("p2", "MRN-KEY-2")])
    write_ndjson(folder / "Observation.ndjson", [observation("o1", "p1", "8480-6", 120.0, "mm[Hg]")])
    return folder


def _dicom_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = "MRN-KEY-1"
    ds.save_as(folder / "ct.dcm")
    return folder


def _init(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        ["init", "--home", str(home), "--site-id", "site-k", "--mrn-system", MRN_SYSTEM], capsys
    )
    assert code == 0, err


def _person_ids(home: Path) -> set[int]:
    from sqlalchemy import select

    from site_node.clinical.omop.schema import cdm_table
    from site_node.home import open_site

    site = open_site(home, upgrade=False, verify_key=False)  # a look at the rows, whatever the key
    with site.engine.connect() as conn:
        return set(conn.execute(select(cdm_table("person").c.person_id)).scalars())


def test_check_value_identifies_the_key_without_revealing_it() -> None:
    one, other = Pseudonymizer(bytes(range(32))), Pseudonymizer(bytes(range(1, 33)))
    assert one.check_value() == Pseudonymizer(bytes(range(32))).check_value()
    assert one.check_value() != other.check_value() and len(one.check_value()) == 64
    assert one.matches(one.check_value()) and not one.matches(other.check_value())
    # a check value is no pseudonym: the label cannot be produced by any digest(namespace, value)
    assert bytes(range(32)).hex() not in one.check_value()


def test_lost_key_attack_now_stops_with_exit_78(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, export, dicom = (
        tmp_path / "site",
        _fhir_export(tmp_path / "fhir"),
        _dicom_folder(tmp_path / "dicom"),
    )
    _init(home, capsys)
    assert _run(["fhir", str(export), "--home", str(home), "--workers", "1"], capsys)[0] == 0
    assert _run(["deid", str(dicom), "--home", str(home), "--workers", "1", "--json"], capsys)[0] == 0
    persons = _person_ids(home)
    monkeypatch.setenv("SITE_NODE_KEY_PASSPHRASE", PASSPHRASE)
    assert _run(["key", "backup", str(tmp_path / "key.backup"), "--home", str(home)], capsys)[0] == 0

    (home / "phi" / "site.key").unlink()  # the key is lost
    code, _, err = _run(["init", "--home", str(home), "--site-id", "site-k"], capsys)
    assert code == 78 and "site-node key restore FILE" in err and "missing" in err
    assert not (home / "phi" / "site.key").exists()  # init did not make a new key
    code, _, err = _run(["deid", str(dicom), "--home", str(home), "--workers", "1"], capsys)
    assert code == 78 and "key restore" in err

    write_key(home / "phi")  # what init used to do: a new key beside the old data
    for args in (
        ["fhir", str(export), "--workers", "1"],
        ["deid", str(dicom), "--workers", "1"],
        ["reid", "PXXXXXXXXXXXXXXX"],
        ["publish", "--dry-run"],
        ["omop", "report"],
        ["init", "--site-id", "site-k"],
    ):
        code, out, err = _run([*args, "--home", str(home)], capsys)
        assert code == 78, (args, code, out, err)
        assert "not the key this site's data was made with" in err and "site-node key restore" in err
    code, out, _ = _run(["status", "--home", str(home)], capsys)
    assert code == 1 and "key: ok" not in out and "not the key" in out
    code, out, _ = _run(["status", "--home", str(home), "--json"], capsys)
    assert code == 1 and json.loads(out)["key"]["ok"] is False
    assert _person_ids(home) == persons  # nothing was written under the wrong key

    code, out, err = _run(
        ["key", "restore", str(tmp_path / "key.backup"), "--home", str(home), "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["verified_against_data"] is True
    assert len(list((home / "phi").glob("site.key.replaced-*"))) == 1  # the wrong key is kept aside
    code, out, _ = _run(["status", "--home", str(home), "--json"], capsys)
    assert code == 0 and json.loads(out)["key"] == {"ok": True, "problem": None, "check": "matches"}
    code, out, _ = _run(["fhir", str(export), "--home", str(home), "--workers", "1", "--json"], capsys)
    assert code == 0 and _person_ids(home) == persons  # same pseudonyms as before the loss


def test_restore_refuses_another_sites_backup_and_a_wrong_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, other = tmp_path / "site", tmp_path / "other"
    _init(home, capsys)
    _init(other, capsys)
    assert (
        _run(["fhir", str(_fhir_export(tmp_path / "fhir")), "--home", str(home), "--workers", "1"], capsys)[0]
        == 0
    )
    monkeypatch.setenv("SITE_NODE_KEY_PASSPHRASE", PASSPHRASE)
    assert _run(["key", "backup", str(tmp_path / "other.backup"), "--home", str(other)], capsys)[0] == 0
    assert _run(["key", "backup", str(tmp_path / "own.backup"), "--home", str(home)], capsys)[0] == 0
    code, _, err = _run(["key", "backup", str(tmp_path / "own.backup"), "--home", str(home)], capsys)
    assert code == 75 and "--force" in err  # an existing backup is not overwritten silently
    assert (tmp_path / "own.backup").stat().st_mode & 0o777 == 0o600
    key_before = (home / "phi" / "site.key").read_bytes()

    code, _, err = _run(["key", "restore", str(tmp_path / "other.backup"), "--home", str(home)], capsys)
    assert code == 78 and "another key" in err
    monkeypatch.setenv("SITE_NODE_KEY_PASSPHRASE", "not the passphrase at all")
    code, _, err = _run(["key", "restore", str(tmp_path / "own.backup"), "--home", str(home)], capsys)
    assert code == 65 and "wrong passphrase" in err
    monkeypatch.setenv("SITE_NODE_KEY_PASSPHRASE", "short")
    code, _, err = _run(["key", "backup", str(tmp_path / "short.backup"), "--home", str(home)], capsys)
    assert code == 65 and "passphrase" in err and not (tmp_path / "short.backup").exists()
    assert (home / "phi" / "site.key").read_bytes() == key_before  # nothing changed


def test_backup_file_is_authenticated(tmp_path: Path) -> None:
    write_key(tmp_path / "phi", PLANTED_KEY)
    blob = backup_key(tmp_path / "phi" / "site.key", PASSPHRASE)
    doc = json.loads(blob)
    doc["kdf"]["n"] = 2**15  # a tampered header (cheaper KDF) fails authentication
    with pytest.raises(InputError):
        restore_key(tmp_path / "new", json.dumps(doc).encode(), PASSPHRASE, None)
    doc = json.loads(blob)
    doc["kdf"]["n"] = 2**30  # a crafted file cannot ask for 1 TiB of scrypt memory
    with pytest.raises(InputError, match="unsupported"):
        restore_key(tmp_path / "new", json.dumps(doc).encode(), PASSPHRASE, None)
    with pytest.raises(KeyMismatchError):
        restore_key(tmp_path / "new", blob, PASSPHRASE, Pseudonymizer(bytes(32)).check_value())
    assert not (tmp_path / "new" / "site.key").exists()
    restore_key(tmp_path / "new", blob, PASSPHRASE, Pseudonymizer(PLANTED_KEY).check_value())
    assert (tmp_path / "new" / "site.key").read_bytes() == PLANTED_KEY


def test_backup_passphrase_from_a_prompt(tmp_path: Path) -> None:
    """Without the environment variable the passphrase is asked twice, hidden; never an argument."""
    home = tmp_path / "site"
    exe = str(Path(sys.executable).parent / "site-node")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITE_NODE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    subprocess.run([exe, "init", "--home", str(home)], check=True, env=env, capture_output=True, timeout=120)
    result = subprocess.run(
        [exe, "key", "backup", str(tmp_path / "k.backup"), "--home", str(home)],
        input=f"{PASSPHRASE}\n{PASSPHRASE}\n",
        text=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert PASSPHRASE not in result.stdout + result.stderr
    assert json.loads((tmp_path / "k.backup").read_text())["format"] == "fedimaging-site-key-backup"


def test_home_made_before_check_values_detects_a_wrong_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No check value stored yet (an earlier release): the re-identification store tells keys apart."""
    import sqlite3

    from sqlalchemy import delete

    from site_node.db import site_key_check
    from site_node.home import open_site

    home = tmp_path / "site"
    _init(home, capsys)
    assert (
        _run(["fhir", str(_fhir_export(tmp_path / "fhir")), "--home", str(home), "--workers", "1"], capsys)[0]
        == 0
    )
    site = open_site(home)
    with site.engine.begin() as conn:
        conn.execute(delete(site_key_check))
    with sqlite3.connect(home / "phi" / "reid.db") as conn:
        conn.execute("DROP TABLE key_check")
    conn.close()
    good = (home / "phi" / "site.key").read_bytes()
    write_key(home / "phi", overwrite=True)
    with pytest.raises(KeyMismatchError, match="re-identification store"):
        open_site(home)
    write_key(home / "phi", good, overwrite=True)
    open_site(home)  # the right key: its check value is recorded now
    code, out, _ = _run(["status", "--home", str(home), "--json"], capsys)
    assert code == 0 and json.loads(out)["key"]["check"] == "matches"


def _encodings(key: bytes) -> list[bytes]:
    forms = [
        key,
        key.hex().encode(),
        key.hex().upper().encode(),
        base64.b64encode(key),
        base64.urlsafe_b64encode(key),
        base64.b64encode(key).rstrip(b"="),
        base64.urlsafe_b64encode(key).rstrip(b"="),
        base64.b32encode(key).rstrip(b"="),
        key[:16],
        key[:16].hex().encode(),
    ]
    return forms + [f.decode("latin-1").encode("utf-16-le") for f in forms[1:4]]


def test_planted_key_never_reaches_logs_outputs_or_stores(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "site"
    write_key(home / "phi", PLANTED_KEY)  # before init: init keeps it
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SITE_NODE_KEY_PASSPHRASE", PASSPHRASE)
    export, dicom = _fhir_export(tmp_path / "fhir"), _dicom_folder(tmp_path / "dicom")
    outputs: list[str] = []
    for args in (
        ["init", "--site-id", "site-k", "--mrn-system", MRN_SYSTEM],
        ["fhir", str(export), "--workers", "1", "--json"],
        ["deid", str(dicom), "--workers", "1", "--json"],
        ["status", "--json"],
        ["status"],
        ["omop", "report", "--json"],
        ["runs", "--json"],
        ["ledger", "--json"],
        ["publish", "--dry-run"],
        ["key", "backup", str(tmp_path / "key.backup"), "--json"],
        ["key", "restore", str(tmp_path / "key.backup"), "--json"],
    ):
        code, out, err = _run([*args, "--home", str(home)], capsys)
        assert code == 0, (args, err)
        outputs += [out, err]
    assert (home / "phi" / "site.key").read_bytes() == PLANTED_KEY
    texts = [t.encode("utf-8", "surrogateescape") for t in outputs]
    texts += [r.getMessage().encode() for r in caplog.records]
    files = [
        p
        for p in [*home.rglob("*"), tmp_path / "key.backup"]
        if p.is_file() and not p.name.startswith("site.key")
    ]
    assert any(p.name == "site.db" for p in files) and any(p.name == "reid.db" for p in files)
    texts += [p.read_bytes() for p in files]
    assert PLANTED_KEY in (home / "phi" / "site.key").read_bytes()  # the search finds what it seeks
    for form in _encodings(PLANTED_KEY):
        assert not any(form in text for text in texts), form


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (skips when the server is unreachable)."""
    yield from fresh_postgres_database()


@pytest.mark.postgres
def test_wrong_key_refused_with_the_database_on_postgresql(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, export = tmp_path / "site", _fhir_export(tmp_path / "fhir")
    args = ["init", "--home", str(home), "--site-id", "site-k", "--db", pg_url, "--mrn-system", MRN_SYSTEM]
    assert _run(args, capsys)[0] == 0
    assert _run(["fhir", str(export), "--home", str(home), "--workers", "1"], capsys)[0] == 0
    monkeypatch.setenv("SITE_NODE_KEY_PASSPHRASE", PASSPHRASE)
    assert _run(["key", "backup", str(tmp_path / "k.backup"), "--home", str(home)], capsys)[0] == 0
    (home / "phi" / "reid.db").unlink()  # only the database's copy of the check value is left
    write_key(home / "phi", overwrite=True)
    code, _, err = _run(["fhir", str(export), "--home", str(home), "--workers", "1"], capsys)
    assert code == 78 and "site database" in err
    code, out, _ = _run(["status", "--home", str(home), "--json"], capsys)
    assert code == 1 and json.loads(out)["key"]["ok"] is False
    assert _run(["key", "restore", str(tmp_path / "k.backup"), "--home", str(home)], capsys)[0] == 0
    assert _run(["fhir", str(export), "--home", str(home), "--workers", "1"], capsys)[0] == 0
