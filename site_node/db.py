"""The site database: operational tables (journal, audit, ledger, withdrawals) and engine set-up.

The OMOP CDM tables live in the same database (see ``site_node.clinical.omop``); this module
holds what every pipeline stage shares. The schema is created and upgraded by Alembic
(``site_node/migrations``) through :func:`upgrade_database`.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from common.database import create_platform_engine

site_metadata = MetaData()

#: One row per input file (or per FHIR resource file) a pipeline stage has handled.
ingest_journal = Table(
    "ingest_journal",
    site_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stage", String(16), nullable=False),  # dicom | fhir | csv
    Column("content_sha256", String(64), nullable=False),
    Column("source_name", Text, nullable=False),  # path relative to the run's SRC, site-local only
    Column("outcome", String(16), nullable=False),  # written | quarantined
    Column("reason", String(64)),
    Column("detail", Text),  # public detail: field/tag names, never values
    Column("output_path", Text),
    Column("patient_pseudonym", String(32)),
    Column("run_id", String(36)),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("stage", "content_sha256", name="uq_journal_stage_content"),
)

#: One row per command run (deid, fhir, csv, curate, publish, withdraw, ...).
run_audit = Table(
    "run_audit",
    site_metadata,
    Column("run_id", String(36), primary_key=True),
    Column("command", String(32), nullable=False),
    Column("software_version", String(32), nullable=False),
    Column("operator", String(64)),
    Column("params", JSON),
    Column("counts", JSON),
    Column("status", String(16), nullable=False),  # running | completed | failed
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)

#: Every payload that left the site: what, when, to whom, hash and size of the exact bytes.
outbound_ledger = Table(
    "outbound_ledger",
    site_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("destination", Text, nullable=False),
    Column("kind", String(32), nullable=False),  # cohort_summary | model_update | metrics | statistics
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("job_id", String(64)),
    Column("round", Integer),
    # written ahead: pending before the bytes leave, then sent | failed (or dry_run, nothing sent)
    Column("status", String(16), nullable=False),
    Column("note", Text),
    Column("completed_at", DateTime(timezone=True)),  # when the outcome was recorded
    # a copy of the exact bytes, so the admin can show what left (not kept above ARCHIVE_MAX_BYTES)
    Column("payload", LargeBinary),
)

#: Patients withdrawn from the study (by pseudonym); honoured by every later stage.
withdrawal = Table(
    "withdrawal",
    site_metadata,
    Column("patient_pseudonym", String(32), primary_key=True),
    Column("withdrawn_at", DateTime(timezone=True), nullable=False),
    Column("operator", String(64)),
    Column("counts", JSON),
)

#: The site key's check value (``Pseudonymizer.check_value``), one row written at init — never the key.
site_key_check = Table(
    "site_key_check",
    site_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("check_value", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


def utcnow() -> dt.datetime:
    """Timezone-aware current UTC time."""
    return dt.datetime.now(dt.UTC)


@lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    """An engine for the site database (see :func:`common.database.create_platform_engine`)."""
    return create_platform_engine(url)


def upgrade_database(url: str) -> None:
    """Create or upgrade the site schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["engine"] = get_engine(url)
    command.upgrade(cfg, "head")
