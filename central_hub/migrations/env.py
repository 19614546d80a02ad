"""Alembic environment for the hub database (driven from ``central_hub.db.upgrade_database``)."""

from __future__ import annotations

from alembic import context

from central_hub.db import Base, get_engine

config = context.config
engine = config.attributes.get("engine") or get_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
