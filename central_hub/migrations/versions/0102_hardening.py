"""Catalog counts in 64-bit columns (counts up to 2**53 are accepted).

Revision ID: 0102_hardening
Revises: 0101_jobs
"""

import sqlalchemy as sa
from alembic import op

revision = "0102_hardening"
down_revision = "0101_jobs"
branch_labels = None
depends_on = None

_TABLES = ("hub_collection", "hub_facet_cell")
_COLUMNS = ("n_persons", "n_studies", "n_series", "n_instances")


def _alter(to: type[sa.types.TypeEngine]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite INTEGER already holds 64-bit values
    for table in _TABLES:
        for column in _COLUMNS:
            op.alter_column(table, column, type_=to(), existing_nullable=True)


def upgrade() -> None:
    _alter(sa.BigInteger)


def downgrade() -> None:
    _alter(sa.Integer)
