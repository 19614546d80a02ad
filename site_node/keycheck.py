"""The site key check: refuse a wrong, regenerated or missing key before it touches any data.

At ``site-node init`` the key's check value (``Pseudonymizer.check_value``: an HMAC of a fixed label,
never the key) is stored twice: in the site database (table ``site_key_check``) and in the
re-identification store (``phi/reid.db``, table ``key_check``). Every command compares the key in
``phi/site.key`` with both before it reads or writes data; a mismatch stops it with exit 78. A
home that holds data made with a key but has lost the key file is told to restore it from its
backup (``site-node key restore FILE``), never given a new one: a new key would give every patient
a second pseudonym, export folder, person_id and date offset.

Homes made before check values existed get theirs on first use; if their re-identification store
has rows, the key must first decrypt its oldest row.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from common.config import SiteSettings
from common.crypto import KEY_FILE_NAME, Pseudonymizer
from common.errors import KeyFileError, KeyMismatchError
from site_node import reid
from site_node.db import ingest_journal, site_key_check, utcnow, withdrawal

log = logging.getLogger(__name__)

RESTORE_HINT = (
    "restore the site's key from its backup with 'site-node key restore FILE' (see docs/pseudonyms.md)"
)


def db_check_value(engine: Engine) -> str | None:
    """The check value kept in the site database (None when absent)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(site_key_check.name):
            return None
        value = conn.execute(select(site_key_check.c.check_value).where(site_key_check.c.id == 1)).scalar()
    return str(value) if value else None


def stored_check_values(settings: SiteSettings, engine: Engine) -> dict[str, str | None]:
    """Where the check value is kept -> the value found there (None when absent)."""
    return {
        "site database": db_check_value(engine),
        "re-identification store": reid.stored_check_value(settings.phi_dir),
    }


def _has_rows(conn: Any, table: Any) -> bool:
    if not inspect(conn).has_table(table.name):
        return False
    return conn.execute(select(func.count()).select_from(select(table).limit(1).subquery())).scalar_one() > 0


def data_made_with_key(settings: SiteSettings, engine: Engine) -> list[str]:
    """The stores of this home that hold data made with a site key (empty for a fresh home)."""
    from site_node.clinical.omop.schema import cdm_table

    found = []
    with engine.connect() as conn:
        for label, table in (
            ("ingest journal", ingest_journal),
            ("OMOP person table", cdm_table("person")),
            ("withdrawal list", withdrawal),
        ):
            if _has_rows(conn, table):
                found.append(label)
    if reid.row_count(settings.phi_dir):
        found.append("re-identification store")
    dicom = settings.export_dir / "dicom"
    if dicom.is_dir() and any(dicom.iterdir()):
        found.append("de-identified export")
    return found


def record_check_value(
    settings: SiteSettings, engine: Engine, pz: Pseudonymizer, *, replace: bool = False
) -> None:
    """Store ``pz``'s check value in the site database and the re-identification store.

    Args:
        settings: the site's settings.
        engine: the site database.
        pz: the site's pseudonymizer.
        replace: overwrite values already stored (only when no data depends on them).
    """
    value, now = pz.check_value(), utcnow()
    with engine.begin() as conn:
        if inspect(conn).has_table(site_key_check.name):  # absent only when opened without upgrading
            present = conn.execute(select(site_key_check.c.id).where(site_key_check.c.id == 1)).first()
            if present is None:
                conn.execute(site_key_check.insert().values(id=1, check_value=value, recorded_at=now))
            elif replace:
                conn.execute(
                    site_key_check.update()
                    .where(site_key_check.c.id == 1)
                    .values(check_value=value, recorded_at=now)
                )
    reid.write_check_value(settings.phi_dir, value, now.isoformat(), replace=replace)


def refuse_missing_key(settings: SiteSettings, engine: Engine) -> None:
    held = data_made_with_key(settings, engine)
    stored = [k for k, v in stored_check_values(settings, engine).items() if v]
    if held:
        raise KeyMismatchError(
            "the site key file phi/site.key is missing, but this home holds data made with it ("
            + ", ".join(held)
            + "). Nothing was changed. Do not create a new key: "
            + RESTORE_HINT
            + ".",
            field="site_key",
        )
    hint = "; or " + RESTORE_HINT if stored else ""
    raise KeyFileError(f"site key file not found; run 'site-node init'{hint}", field="site_key")


def verify_site_key(settings: SiteSettings, engine: Engine, *, record: bool = True) -> Pseudonymizer:
    """Load the site key and check it against the stored check values.

    Args:
        settings: the site's settings.
        engine: the site database.
        record: store the check value where it is missing (homes made before check values).

    Returns:
        The site's pseudonymizer.

    Raises:
        KeyMismatchError: the key is not the one the data was made with, or it is missing beside data.
        KeyFileError: the key file is missing (and no data needs it), unsafe or too short.
    """
    path = settings.phi_dir / KEY_FILE_NAME
    if not path.exists():
        refuse_missing_key(settings, engine)
    pz = Pseudonymizer.from_file(path)
    stored = stored_check_values(settings, engine)
    wrong = [where for where, value in stored.items() if value is not None and not pz.matches(value)]
    if wrong:
        raise KeyMismatchError(
            "the site key in phi/site.key is not the key this site's data was made with (its check "
            f"value differs from the one stored at init in the {' and the '.join(wrong)}); with it "
            "every patient would get a second pseudonym. Nothing was changed. Put the original key "
            "back: " + RESTORE_HINT + ".",
            field="site_key",
        )
    if (
        all(value is None for value in stored.values())
        and reid.ReidTable(settings, pz).opens_first_row() is False
    ):
        raise KeyMismatchError(
            "the site key in phi/site.key cannot read this site's re-identification store: it is not "
            "the key the data was made with. Nothing was changed. "
            + RESTORE_HINT[0].upper()
            + RESTORE_HINT[1:]
            + ".",
            field="site_key",
        )
    if record and any(value is None for value in stored.values()):
        record_check_value(settings, engine, pz)
        log.info("recorded the site key check value where it was missing")
    return pz


def key_check_status(settings: SiteSettings, engine: Engine) -> dict[str, Any]:
    """The key check for ``site-node status``: never raises, never writes."""
    try:
        verify_site_key(settings, engine, record=False)
    except (KeyFileError, KeyMismatchError) as exc:
        return {"ok": False, "problem": exc.public_message, "check": "failed"}
    stored = stored_check_values(settings, engine)
    recorded = all(value is not None for value in stored.values())
    return {"ok": True, "problem": None, "check": "matches" if recorded else "not recorded yet"}
