"""Keys, keyed pseudonyms and authenticated encryption for data kept at a site.

Everything that turns an identifier into a pseudonym goes through :class:`Pseudonymizer`, so the
same patient gets the same pseudonym in DICOM, FHIR and OMOP. Derivations (all documented in
``docs/pseudonyms.md`` and pinned by known-answer tests):

* ``digest(ns, value) = HMAC-SHA256(key, b"fedimaging/v1/" + ns + b"\\x00" + utf8(value))``
* pseudonymous ID: one namespace letter followed by the first 15 characters of the RFC 4648
  base32 encoding of the digest (16 characters in all, so it fits DICOM's SH and LO VRs),
  e.g. ``P`` + ``RA3Q...`` for namespace ``patient``;
* UID: ``2.25.`` + decimal of the first 16 bytes of ``digest("uid", original_uid)`` (at most 44
  characters, a valid DICOM UID);
* date offset: ``-(1 + int(first 4 bytes of digest("date_offset", patient_id)) % 3650)`` whole
  days, i.e. in [-3650, -1], never zero;
* key check value: hex ``HMAC-SHA256(key, b"fedimaging/v1/key-check")``, stored at init in the site
  database and the re-identification store so a wrong or regenerated key is refused (the label holds
  no NUL byte, so no ``digest`` input can equal it).

This module is the only one that reads, writes or holds key bytes (key file, backups, restores).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from common.errors import InputError, KeyFileError, KeyMismatchError

KEY_BYTES = 32
KEY_FILE_NAME = "site.key"
DATE_OFFSET_MAX_DAYS = 3650
_DOMAIN = b"fedimaging/v1/"

#: Namespace name -> the letter that starts pseudonymous IDs of that namespace.
NAMESPACE_PREFIX: dict[str, str] = {
    "patient": "P",
    "accession": "A",
    "study": "S",
    "series": "R",
    "encounter": "E",
    "resource": "F",
    "collection": "C",
    "device": "D",
    "other": "O",
}
_NONCE_BYTES = 12
_CHECK_LABEL = _DOMAIN + b"key-check"


def generate_key() -> bytes:
    """Return 32 fresh random bytes from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def write_key(phi_dir: Path, key: bytes | None = None, *, overwrite: bool = False) -> Path:
    """Write the site key under ``phi_dir`` with mode 0600.

    Args:
        phi_dir: the node's PHI folder (created with mode 0700 if missing).
        key: the key to write; a new random one when omitted.
        overwrite: replace an existing key (destroys the link to earlier pseudonyms).

    Returns:
        The path of the key file.

    Raises:
        KeyFileError: the key exists and ``overwrite`` is false, or the key is too short.
    """
    key = generate_key() if key is None else key
    if len(key) < KEY_BYTES:
        raise KeyFileError(f"site key must be at least {KEY_BYTES} bytes", field="site_key")
    phi_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(phi_dir, 0o700)
    path = phi_dir / KEY_FILE_NAME
    if path.exists() and not overwrite:
        raise KeyFileError("a site key already exists; refusing to replace it", field="site_key")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def load_key(path: Path) -> bytes:
    """Load a site key, refusing unsafe files.

    Raises:
        KeyFileError: missing file, mode readable/writable by group or others, or too short.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError("site key file not found; run 'site-node init'", field="site_key") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError("site key file is accessible by group or others; chmod 600 it", field="site_key")
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise KeyFileError(f"site key file holds fewer than {KEY_BYTES} bytes", field="site_key")
    return key


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


class Pseudonymizer:
    """Derive every pseudonym of a site from its secret key.

    Args:
        key: the site secret (at least 32 bytes).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise KeyFileError(f"site key must be at least {KEY_BYTES} bytes", field="site_key")
        self._key = bytes(key)
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)
        self._prefixes: dict[str, bytes] = {}

    def __reduce__(self) -> tuple[type[Pseudonymizer], tuple[bytes]]:
        """Pickle as the class and its key, so a pseudonymizer reaches worker processes as itself.

        This is the only way the key leaves this object: code elsewhere passes the pseudonymizer,
        never its key bytes. Pickles travel only between processes of one site node.
        """
        return (Pseudonymizer, (self._key,))

    def __repr__(self) -> str:
        return "Pseudonymizer(<key hidden>)"

    @classmethod
    def from_file(cls, path: Path) -> Pseudonymizer:
        """The pseudonymizer of the key file at ``path`` (see :func:`load_key`)."""
        return cls(load_key(path))

    @classmethod
    def ephemeral(cls) -> Pseudonymizer:
        """A pseudonymizer with a random key that is never stored (anonymization mode)."""
        return cls(generate_key())

    def digest(self, namespace: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` bound to ``namespace``."""
        prefix = self._prefixes.get(namespace)
        if prefix is None:
            if not namespace or "\x00" in namespace:
                raise InputError("invalid pseudonym namespace", field="namespace")
            prefix = self._prefixes[namespace] = _DOMAIN + namespace.encode("ascii") + b"\x00"
        mac = self._keyed.copy()  # the key schedule is done once per pseudonymizer, not per value
        mac.update(prefix + str(value).encode("utf-8"))
        return mac.digest()

    def pseudonym(self, namespace: str, value: str) -> str:
        """Pseudonymous ID: namespace letter + 15 base32 characters (16 characters)."""
        prefix = NAMESPACE_PREFIX.get(namespace)
        if prefix is None:
            raise InputError("unknown pseudonym namespace", field="namespace")
        return prefix + _b32(self.digest(namespace, value))[:15]

    def patient(self, patient_id: str) -> str:
        """The patient pseudonym shared by DICOM, FHIR and OMOP."""
        return self.pseudonym("patient", patient_id.strip())

    def uid(self, original_uid: str) -> str:
        """A valid DICOM UID ``2.25.<decimal>`` derived from ``original_uid``."""
        number = int.from_bytes(self.digest("uid", original_uid.strip().rstrip("\x00"))[:16], "big")
        return f"2.25.{number}"

    def date_offset(self, patient_id: str) -> int:
        """Per-patient date shift in whole days, in [-3650, -1] (never zero)."""
        raw = int.from_bytes(self.digest("date_offset", patient_id.strip())[:4], "big")
        return -(1 + raw % DATE_OFFSET_MAX_DAYS)

    def integer_id(self, namespace: str, value: str, bits: int = 53) -> int:
        """A positive integer surrogate key (e.g. OMOP ``person_id``); 53 bits fit JSON and BIGINT."""
        raw = int.from_bytes(self.digest(namespace, value)[:8], "big")
        return 1 + raw % ((1 << bits) - 1)

    def check_value(self) -> str:
        """The key check value: hex HMAC-SHA256 of a fixed label (identifies the key, reveals nothing)."""
        return hmac.new(self._key, _CHECK_LABEL, hashlib.sha256).hexdigest()

    def matches(self, check_value: str) -> bool:
        """True when ``check_value`` was made with this key (constant-time comparison)."""
        return hmac.compare_digest(self.check_value(), str(check_value))

    def subkey(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` derived with HKDF-SHA256 (e.g. the re-identification table)."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DOMAIN + purpose.encode()).derive(
            self._key
        )


def seal(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """Encrypt with AES-256-GCM; returns ``nonce || ciphertext+tag``."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, blob: bytes, associated_data: bytes = b"") -> bytes:
    """Decrypt a blob made by :func:`seal`.

    Raises:
        InputError: wrong key, wrong associated data or tampered blob.
    """
    from cryptography.exceptions import InvalidTag

    if len(blob) < _NONCE_BYTES + 16:
        raise InputError("encrypted blob is too short", field="ciphertext")
    try:
        return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise InputError("encrypted blob failed authentication", field="ciphertext") from None


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (content hashes for journals and ledgers; not for identifiers)."""
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- key backup

BACKUP_FORMAT = "fedimaging-site-key-backup"
BACKUP_VERSION = 1
#: scrypt cost of new backups (N = 2**17, r = 8, p = 1: 128 MiB and about half a second).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_SCRYPT_N_RANGE = (2**14, 2**20)  # what a backup file may ask for (a crafted file cannot exhaust memory)
MIN_PASSPHRASE_CHARS = 12


def _passphrase_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _backup_header(kdf: dict[str, object], check_value: str) -> dict[str, object]:
    return {"format": BACKUP_FORMAT, "version": BACKUP_VERSION, "kdf": kdf, "check_value": check_value}


def _aad(header: dict[str, object]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def backup_key(key_path: Path, passphrase: str) -> bytes:
    """The site key encrypted under ``passphrase`` (scrypt + AES-256-GCM), as JSON bytes.

    The file names its format, the scrypt parameters and salt, and the key's check value (so a
    restore can tell which site's data the backup belongs to before asking for the passphrase); the
    header is authenticated as associated data.

    Args:
        key_path: the site key file.
        passphrase: at least :data:`MIN_PASSPHRASE_CHARS` characters.

    Raises:
        InputError: the passphrase is too short.
        KeyFileError: the key file is missing or unsafe.
    """
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise InputError(
            f"the backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters", field="passphrase"
        )
    key = load_key(key_path)
    salt = secrets.token_bytes(16)
    kdf = {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)}
    header = _backup_header(kdf, Pseudonymizer(key).check_value())
    sealed = seal(_passphrase_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P), key, _aad(header))
    return (json.dumps({**header, "sealed_key": _b64(sealed)}, indent=2) + "\n").encode()


def backup_check_value(blob: bytes) -> str:
    """The check value a backup file declares (readable without the passphrase).

    Raises:
        InputError: the file is not a site key backup.
    """
    return _parse_backup(blob)[0]["check_value"]  # type: ignore[return-value]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_backup(blob: bytes) -> tuple[dict[str, object], bytes, bytes, tuple[int, int, int]]:
    try:
        doc = json.loads(blob)
        kdf = doc["kdf"]
        header = _backup_header(kdf, str(doc["check_value"]))
        ok = doc.get("format") == BACKUP_FORMAT and doc.get("version") == BACKUP_VERSION
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        salt, sealed = base64.b64decode(kdf["salt"]), base64.b64decode(doc["sealed_key"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError("not a site key backup file", field="backup_file") from None
    in_range = _SCRYPT_N_RANGE[0] <= n <= _SCRYPT_N_RANGE[1] and n & (n - 1) == 0 and 1 <= r <= 16 and p == 1
    if not ok or kdf.get("name") != "scrypt" or not in_range:
        raise InputError("unsupported site key backup format or parameters", field="backup_file")
    return header, salt, sealed, (n, r, p)


def restore_key(phi_dir: Path, blob: bytes, passphrase: str, expected_check: str | None) -> Path:
    """Decrypt a key backup, check it against the site's check value and install it as the site key.

    A different key already in place is kept beside it as ``site.key.replaced-<UTC time>`` (0600):
    data may have been made with it after the original was lost.

    Args:
        phi_dir: the site's PHI folder.
        blob: the backup file's bytes (from :func:`backup_key`).
        passphrase: the backup's passphrase.
        expected_check: the check value stored with the site's data (None: the home holds no data
            made with a key, any backup is accepted).

    Returns:
        The path of the installed key file.

    Raises:
        InputError: not a backup file, or a wrong passphrase / damaged file.
        KeyMismatchError: the backup's key is not the one the site's data was made with.
    """
    header, salt, sealed, (n, r, p) = _parse_backup(blob)
    if expected_check is not None and not hmac.compare_digest(str(header["check_value"]), expected_check):
        raise KeyMismatchError(
            "this backup holds another key than the one this site's data was made with (its check "
            "value differs); nothing was changed. Use the backup made for this site.",
            field="backup_file",
        )
    try:
        key = open_sealed(_passphrase_key(passphrase, salt, n, r, p), sealed, _aad(header))
    except InputError:
        raise InputError(
            "wrong passphrase, or the backup file is damaged; nothing was changed", field="passphrase"
        ) from None
    if len(key) != KEY_BYTES or not Pseudonymizer(key).matches(str(header["check_value"])):
        raise InputError("the backup file is damaged; nothing was changed", field="backup_file")
    current = phi_dir / KEY_FILE_NAME
    if current.exists() and not hmac.compare_digest(current.read_bytes(), key):
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        os.replace(current, phi_dir / f"{KEY_FILE_NAME}.replaced-{stamp}")
    return write_key(phi_dir, key, overwrite=True)


def key_check_value(key_path: Path) -> str:
    """The check value of the key in ``key_path``.

    Raises:
        KeyFileError: the key file is missing or unsafe.
    """
    return Pseudonymizer.from_file(key_path).check_value()
