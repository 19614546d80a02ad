"""PACS connector: nodes and the pull journal (accession -> study -> instances, keyed pseudonyms only).

Revision ID: 0006
Revises: 0003
"""

from alembic import op

from site_node.pacs.tables import pacs_instance, pacs_node, pacs_pull

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = [pacs_node, pacs_pull, pacs_instance]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind, checkfirst=True)
