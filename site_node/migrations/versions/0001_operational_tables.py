"""Operational tables: ingest journal, run audit, outbound ledger, withdrawals.

Revision ID: 0001
Revises:
"""

from alembic import op

from site_node.db import ingest_journal, outbound_ledger, run_audit, withdrawal

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = [ingest_journal, run_audit, outbound_ledger, withdrawal]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind, checkfirst=True)
