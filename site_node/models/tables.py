"""Site tables of the model store and of clinical inference runs (migration 0007)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Float, Integer, String, Table, Text, UniqueConstraint

from site_node.db import site_metadata

#: One row per model version the site holds.
site_model = Table(
    "site_model",
    site_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(16), nullable=False),  # hub | file | local
    Column("sha256", String(64), nullable=False),
    Column("template", String(64), nullable=False),
    Column("template_digest", String(64)),
    Column("metrics", JSON),
    Column("card", JSON),
    Column("path", Text, nullable=False),  # relative to the site home
    Column("added_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name", "version", name="uq_site_model_name_version"),
)

#: One row per clinical inference (study pseudonym only: identifiers never reach this table).
inference_run = Table(
    "inference_run",
    site_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(64), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("study_pseudonym", String(32), nullable=False, index=True),
    Column("trigger", String(16), nullable=False),  # folder | pacs | route
    Column("status", String(16), nullable=False),  # completed | failed | superseded
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("stored_at", DateTime(timezone=True)),
    Column("latency_s", Float),  # last instance received (or run start) -> results stored
    Column("compute_s", Float),  # model forward passes
    Column("total_s", Float),  # run start -> results stored
    Column("outputs", JSON),  # kinds and counts, never UIDs
    Column("note", Text),  # public reason on failure
)
