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
  days, i.e. in [-3650, -1], never zero.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from common.errors import InputError, KeyFileError

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
