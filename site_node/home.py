"""Creating and opening a site node's home folder.

Layout::

    <home>/site.toml        settings (no secrets unless the admin adds tokens)
    <home>/phi/             mode 0700: site.key, reid.db (encrypted re-identification table)
    <home>/export/          de-identified output only
    <home>/quarantine/      mode 0700: raw inputs set aside for review, one JSON reason file beside each
    <home>/site.db          site database (unless db_url points elsewhere)
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from common.config import SITE_TOML, SiteSettings, load_site_settings
from common.crypto import KEY_FILE_NAME, Pseudonymizer, write_key
from common.errors import ConfigError
from site_node.clinical.omop.conformance import ensure_cdm_source, refresh_cdm_source
from site_node.db import get_engine, upgrade_database
from site_node.keycheck import data_made_with_key, record_check_value, refuse_missing_key, verify_site_key

log = logging.getLogger(__name__)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_home(
    home: Path,
    site_id: str,
    *,
    db_url: str | None = None,
    country: str | None = None,
    floor_k: int = 10,
    mrn_system: str | None = None,
) -> SiteSettings:
    """Create a site node's home: folders, key, ``site.toml`` and the database schema.

    Re-running on an existing home keeps its key and settings and only upgrades the schema. A new
    key is written only where no data made with a key exists; the key's check value is stored in
    the site database and the re-identification store, and an existing key is checked against it.

    Args:
        home: the folder to create.
        site_id: short lower-case identifier of the site.
        db_url: SQLAlchemy URL of the site database (SQLite in the home by default).
        country: ISO country code shown in the catalog.
        floor_k: the site's small-cell suppression floor (at least 5).
        mrn_system: FHIR identifier system of the hospital MRN.

    Returns:
        The loaded settings.

    Raises:
        KeyMismatchError: the home holds data but no key (restore it), or the key is not the one
            its data was made with (exit 78).
    """
    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    toml_path = home / SITE_TOML
    if not toml_path.exists():
        values: dict[str, object] = {"site_id": site_id, "floor_k": floor_k}
        if db_url:
            values["db_url"] = db_url
        if country:
            values["country"] = country
        if mrn_system:
            values["mrn_system"] = mrn_system
        load_site_settings(home, **values)  # validate before anything is written
        lines = ["# Site node settings; see README 'Site settings'."]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines += [
            "",
            "[deid]",
            "# PS3.15 options; defaults: modified dates, patient characteristics,",
            "# device identity, clean descriptors.",
            "cleared_burned_in = []",
            '# "redact": OCR finds burned-in text and blanks it (else quarantine); "quarantine": all',
            'burned_in_text = "redact"',
            "",
            "[approved_jobs]",
            "# template = \"sha256 of the job folder\" (see 'site-node job approve')",
            "",
        ]
        toml_path.write_text("\n".join(lines))
    else:
        existing = tomllib.loads(toml_path.read_text())
        if existing.get("site_id", site_id) != site_id:
            raise ConfigError("home already initialised for another site_id", field="site_id")
    settings = load_site_settings(home)
    settings.export_dir.mkdir(parents=True, exist_ok=True)
    # phi/ holds the key and the reid table; quarantine/ holds raw inputs set aside for review:
    # both are for the site admin only
    for private in (settings.phi_dir, settings.quarantine_dir):
        private.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(private, 0o700)
    upgrade_database(settings.database_url)
    engine = get_engine(settings.database_url)
    if not (settings.phi_dir / KEY_FILE_NAME).exists():
        if data_made_with_key(settings, engine):
            refuse_missing_key(settings, engine)  # refuses: a new key would split every patient in two
        write_key(settings.phi_dir)
        log.info("created a new site key")
        # no data depends on an earlier check value (if any): the new key's replaces it
        record_check_value(settings, engine, SiteContext(settings).load_pseudonymizer(), replace=True)
    verify_site_key(settings, engine)
    refresh_cdm_source(engine, settings.site_id)
    return settings


@dataclass
class SiteContext:
    """An opened site: settings, database engine and (lazily) the pseudonymizer."""

    settings: SiteSettings

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        """The site database engine."""
        return get_engine(self.settings.database_url)

    def pseudonymizer(self) -> Pseudonymizer:
        """Load the key, check it against the stored check value and return the site's pseudonymizer.

        Raises:
            KeyFileError: the key file is missing or unsafe.
            KeyMismatchError: the key is not the one the site's data was made with.
        """
        return verify_site_key(self.settings, self.engine)

    def load_pseudonymizer(self) -> Pseudonymizer:
        """The pseudonymizer of the key file as it is, unchecked (init and restore only)."""
        return Pseudonymizer.from_file(self.settings.phi_dir / KEY_FILE_NAME)


def open_site(
    home: Path | str | None = None, *, upgrade: bool = True, verify_key: bool = True
) -> SiteContext:
    """Open an initialised site home (``$SITE_NODE_HOME`` by default).

    Args:
        home: the home folder (``$SITE_NODE_HOME`` when None).
        upgrade: create or upgrade the database schema first.
        verify_key: check the site key against the stored check value before anything else
            (only ``status`` and ``key restore`` skip it: they report or repair a wrong key).

    Raises:
        ConfigError: the home is not initialised or its settings are invalid.
        KeyMismatchError: the key is missing beside data, or is not the one the data was made with.
    """
    settings = load_site_settings(home)
    if not (settings.home / SITE_TOML).exists():
        raise ConfigError("site home is not initialised; run 'site-node init'", field="home")
    site = SiteContext(settings)
    if upgrade:
        upgrade_database(settings.database_url)  # schema only: the key check needs its table
    if verify_key:
        verify_site_key(settings, site.engine)  # before any row is read or written
    if upgrade:
        ensure_cdm_source(site.engine, settings.site_id)  # databases made before cdm_source was filled
    return site
