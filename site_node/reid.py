"""The re-identification table: pseudonym -> original identifiers, encrypted at rest.

Kept in ``<home>/phi/reid.db`` (SQLite, mode 0600, inside the 0700 PHI folder). Each row holds a
pseudonym, its namespace and the originals sealed with AES-256-GCM under ``pz.subkey("reid-table")``
with the pseudonym and namespace as associated data, so a row cannot be moved to another pseudonym.
Only a holder of the site key can read it. Used by the DICOM stage (patients, accessions, studies)
and the FHIR stage. Never written in anonymization mode.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from common.config import SiteSettings
from common.crypto import Pseudonymizer, open_sealed, seal
from common.errors import NotFoundError

REID_FILE = "reid.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reid (
    pseudonym TEXT NOT NULL,
    namespace TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (pseudonym, namespace, fingerprint)
)
"""


class ReidTable:
    """Encrypted pseudonym -> originals store of one site.

    Args:
        settings: the site's settings (the table lives in ``settings.phi_dir``).
        pseudonymizer: the site's pseudonymizer (its key derives the table key).
    """

    def __init__(self, settings: SiteSettings, pseudonymizer: Pseudonymizer) -> None:
        self.path: Path = settings.phi_dir / REID_FILE
        self._key = pseudonymizer.subkey("reid-table")
        self._fp_key = pseudonymizer.subkey("reid-table-fingerprint")

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute(_SCHEMA)
        return conn

    def _row(self, pseudonym: str, namespace: str, originals: dict[str, str]) -> tuple[str, str, str, bytes]:
        plain = json.dumps(originals, sort_keys=True, ensure_ascii=False).encode()
        aad = f"{namespace}\x00{pseudonym}".encode()
        fingerprint = hmac.new(self._fp_key, aad + b"\x00" + plain, hashlib.sha256).hexdigest()[:32]
        return pseudonym, namespace, fingerprint, seal(self._key, plain, aad)

    def record(self, pseudonym: str, namespace: str, originals: dict[str, str]) -> None:
        """Store the originals behind ``pseudonym`` (idempotent for identical originals)."""
        self.record_many([(pseudonym, namespace, originals)])

    def record_many(self, rows: Iterable[tuple[str, str, dict[str, str]]]) -> int:
        """Store many rows in one transaction; returns how many were given."""
        sealed = [self._row(p, ns, o) for p, ns, o in rows]
        if not sealed:
            return 0
        with self._connect() as conn:
            conn.executemany("INSERT OR IGNORE INTO reid VALUES (?, ?, ?, ?)", sealed)
        conn.close()
        return len(sealed)

    def lookup(self, pseudonym: str) -> dict[str, str]:
        """The original identifiers behind ``pseudonym`` (merged over its rows), plus its namespace.

        Raises:
            NotFoundError: no row for this pseudonym.
            InputError: a row fails authentication (wrong key or tampering).
        """
        if not self.path.exists():
            raise NotFoundError("no re-identification table at this site", field="pseudonym")
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT namespace, sealed FROM reid WHERE pseudonym = ? ORDER BY rowid", (pseudonym,)
            ).fetchall()
        conn.close()
        if not rows:
            raise NotFoundError("unknown pseudonym", field="pseudonym")
        merged: dict[str, str] = {}
        for namespace, blob in rows:
            aad = f"{namespace}\x00{pseudonym}".encode()
            merged.update(json.loads(open_sealed(self._key, bytes(blob), aad)))
            merged["namespace"] = namespace
        return merged
