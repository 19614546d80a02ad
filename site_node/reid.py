"""The re-identification table: pseudonym -> original identifiers, encrypted at rest.

Kept in ``<home>/phi/reid.db`` (SQLite, mode 0600, inside the 0700 PHI folder). Each row holds a
pseudonym, its namespace and the originals sealed with AES-256-GCM under ``pz.subkey("reid-table")``
with the pseudonym and namespace as associated data, so a row cannot be moved to another pseudonym.
Only a holder of the site key can read it. Used by the DICOM stage (patients, accessions, studies)
and the FHIR stage. Never written in anonymization mode.

The store also keeps the site key's check value (table ``key_check``, one row written at init), the
second copy beside the site database's: a key that does not match it is refused before any use.
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
from common.errors import InputError, NotFoundError

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

_CHECK_SCHEMA = """
CREATE TABLE IF NOT EXISTS key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    check_value TEXT NOT NULL,
    recorded_at TEXT NOT NULL
)
"""


def _connect_private(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600 inside a 0700 folder when missing) the store at ``path``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    return sqlite3.connect(path, timeout=30)


def _read_only(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def stored_check_value(phi_dir: Path) -> str | None:
    """The key check value kept in the store (None when the store or the value is absent)."""
    conn = _read_only(phi_dir / REID_FILE)
    if conn is None:
        return None
    try:
        row = conn.execute("SELECT check_value FROM key_check WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # a store made before check values existed
        row = None
    finally:
        conn.close()
    return str(row[0]) if row else None


def write_check_value(phi_dir: Path, check_value: str, recorded_at: str, *, replace: bool = False) -> None:
    """Keep ``check_value`` in the store (an existing value is kept unless ``replace``)."""
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    with _connect_private(phi_dir / REID_FILE) as conn:
        conn.execute(_SCHEMA)
        conn.execute(_CHECK_SCHEMA)
        conn.execute(f"{verb} INTO key_check VALUES (1, ?, ?)", (check_value, recorded_at))  # noqa: S608
    conn.close()


def row_count(phi_dir: Path) -> int:
    """How many re-identification rows the store holds (0 when absent)."""
    conn = _read_only(phi_dir / REID_FILE)
    if conn is None:
        return 0
    try:
        return int(conn.execute("SELECT COUNT(*) FROM reid").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


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
        conn = _connect_private(self.path)
        conn.execute(_SCHEMA)
        return conn

    def opens_first_row(self) -> bool | None:
        """Whether the oldest row decrypts with this key (None when there is no row).

        How a store made before check values existed tells a wrong key from the right one.
        """
        conn = _read_only(self.path)
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT pseudonym, namespace, sealed FROM reid ORDER BY rowid LIMIT 1"
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            conn.close()
        if row is None:
            return None
        try:
            open_sealed(self._key, bytes(row[2]), f"{row[1]}\x00{row[0]}".encode())
        except InputError:
            return False
        return True

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
