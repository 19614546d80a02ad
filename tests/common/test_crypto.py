"""Keys, pseudonyms, UIDs, date offsets and AES-GCM: known answers and refusals."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydicom.valuerep import validate_value

from common.crypto import (
    Pseudonymizer,
    generate_key,
    load_key,
    open_sealed,
    seal,
    write_key,
)
from common.errors import InputError, KeyFileError
from tests.conftest import TEST_KEY

# Known answers for TEST_KEY. If one of these changes, every existing site's pseudonyms change:
# that is a breaking change and needs a migration, not a test update.
KAT_MRN = "MRN-0001234"
KAT_PATIENT = "PG6PP3SKM5ZDX65G"
KAT_UID_IN = "1.2.826.0.1.3680043.10.1.1"
KAT_UID_OUT = "2.25.281907769974512848363107580383593863948"
KAT_OFFSET = -3533
KAT_ACCESSION = "AWIU6LCC4VRCWSJN"
KAT_PERSON_ID = 8723290322258236


@pytest.fixture
def pz() -> Pseudonymizer:
    return Pseudonymizer(TEST_KEY)


def test_known_answer_patient_pseudonym(pz: Pseudonymizer) -> None:
    assert pz.patient(KAT_MRN) == KAT_PATIENT


def test_known_answer_uid(pz: Pseudonymizer) -> None:
    assert pz.uid(KAT_UID_IN) == KAT_UID_OUT


def test_known_answer_date_offset(pz: Pseudonymizer) -> None:
    assert pz.date_offset(KAT_MRN) == KAT_OFFSET


def test_known_answer_accession_and_person_id(pz: Pseudonymizer) -> None:
    assert pz.pseudonym("accession", "ACC123") == KAT_ACCESSION
    assert pz.integer_id("patient", KAT_MRN) == KAT_PERSON_ID


def test_namespaces_do_not_collide(pz: Pseudonymizer) -> None:
    assert pz.pseudonym("patient", "X1")[1:] != pz.pseudonym("accession", "X1")[1:]
    assert pz.digest("patient", "X1") != pz.digest("accession", "X1")


def test_pseudonym_format(pz: Pseudonymizer) -> None:
    for value in ["1", "MRN-9", "Ünïcode ñame", "x" * 500]:
        pseudonym = pz.patient(value)
        assert re.fullmatch(r"P[A-Z2-7]{15}", pseudonym)
        assert (
            pz.pseudonym("accession", value).startswith("A") and len(pz.pseudonym("accession", value)) == 16
        )


def test_unknown_namespace_refused(pz: Pseudonymizer) -> None:
    with pytest.raises(InputError):
        pz.pseudonym("nonsense", "1")


@pytest.mark.parametrize(
    "uid", ["1.2.3", "1.2.840.113619.2.55.3.604688119.969.1268071029.320", "2.25.1", "9" * 64]
)
def test_uids_are_valid_dicom(pz: Pseudonymizer, uid: str) -> None:
    new = pz.uid(uid)
    assert new.startswith("2.25.") and len(new) <= 64
    validate_value("UI", new, validation_mode=2)  # raises on an invalid UID
    assert pz.uid(uid) == new  # consistent


def test_date_offset_range_and_never_zero(pz: Pseudonymizer) -> None:
    offsets = {pz.date_offset(f"MRN{i}") for i in range(2000)}
    assert min(offsets) >= -3650 and max(offsets) <= -1
    assert 0 not in offsets
    assert len(offsets) > 1000  # spread, not a constant


def test_different_keys_give_different_pseudonyms() -> None:
    a, b = Pseudonymizer(TEST_KEY), Pseudonymizer(bytes(32))
    assert a.patient(KAT_MRN) != b.patient(KAT_MRN)


def test_short_key_refused() -> None:
    with pytest.raises(KeyFileError):
        Pseudonymizer(b"short")


def test_key_file_written_0600_and_loaded(tmp_path: Path) -> None:
    path = write_key(tmp_path / "phi")
    assert (path.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "phi").stat().st_mode & 0o777) == 0o700
    assert len(load_key(path)) == 32


def test_key_file_not_overwritten(tmp_path: Path) -> None:
    write_key(tmp_path)
    with pytest.raises(KeyFileError, match="already exists"):
        write_key(tmp_path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_file_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    path = write_key(tmp_path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="group or others") as info:
        load_key(path)
    assert info.value.field == "site_key"


def test_key_file_too_short_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    path.write_bytes(b"0123456789")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match="fewer than 32 bytes"):
        load_key(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_key(tmp_path / "nope.key")


def test_key_message_never_contains_key_bytes(tmp_path: Path) -> None:
    path = write_key(tmp_path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError) as info:
        load_key(path)
    assert path.read_bytes().hex() not in str(info.value)


def test_seal_roundtrip_and_tamper_detection() -> None:
    key = generate_key()
    blob = seal(key, b"MRN-0001234|Smith^John", b"row-1")
    assert b"Smith" not in blob
    assert open_sealed(key, blob, b"row-1") == b"MRN-0001234|Smith^John"
    with pytest.raises(InputError):
        open_sealed(key, blob, b"row-2")  # wrong associated data
    with pytest.raises(InputError):
        open_sealed(generate_key(), blob, b"row-1")  # wrong key
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(InputError):
        open_sealed(key, tampered, b"row-1")


def test_seal_uses_fresh_nonces() -> None:
    key = generate_key()
    assert seal(key, b"same") != seal(key, b"same")


def test_subkeys_differ_by_purpose(pz: Pseudonymizer) -> None:
    assert pz.subkey("reid-table") != pz.subkey("other")
    assert len(pz.subkey("reid-table")) == 32


def test_ephemeral_pseudonymizers_are_unlinkable() -> None:
    assert Pseudonymizer.ephemeral().patient(KAT_MRN) != Pseudonymizer.ephemeral().patient(KAT_MRN)
