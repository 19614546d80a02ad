"""Tables of the PACS connector (created by site migration 0006).

``pacs_node`` holds the PACS nodes added with ``pacs add`` (names of environment variables or files
for secrets, never the secrets). ``pacs_pull`` and ``pacs_instance`` are the pull journal: accession
-> study -> instances, each identifier only as a keyed pseudonym of the site key.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from site_node.db import site_metadata

pacs_node = Table(
    "pacs_node",
    site_metadata,
    Column("name", String(64), primary_key=True),
    Column("aet", String(16), nullable=False),
    Column("host", Text, nullable=False),
    Column("port", Integer, nullable=False),
    Column("dicomweb_url", Text),
    # {"kind": "none|basic|bearer|cert", "username": ..., "password_env"/"password_file", ...}
    Column("auth", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: One row per (node, accession, study): the state of its pull.
pacs_pull = Table(
    "pacs_pull",
    site_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node", String(64), nullable=False),
    Column("accession_key", String(16), nullable=False),  # pseudonym("accession", value)
    Column("study_key", String(64), nullable=False),  # remapped study UID ("" while unknown)
    Column("status", String(16), nullable=False),  # pending | done | not_found | failed
    Column("instances", Integer, nullable=False, default=0),  # as announced by the PACS
    Column("reason", Text),  # plain words, never a value
    Column("run_id", String(36)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("node", "accession_key", "study_key", name="uq_pacs_pull"),
)

#: One row per instance handed to de-identification by a pull.
pacs_instance = Table(
    "pacs_instance",
    site_metadata,
    Column("instance_key", String(64), primary_key=True),  # remapped SOP Instance UID
    Column("study_key", String(64), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),  # written | quarantined | duplicate
    Column("run_id", String(36)),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)
