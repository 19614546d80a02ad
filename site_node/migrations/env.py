"""Alembic environment for the site database (driven from ``site_node.db.upgrade_database``)."""

from __future__ import annotations

from alembic import context

from site_node.db import get_engine, site_metadata

config = context.config
engine = config.attributes.get("engine") or get_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=site_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
