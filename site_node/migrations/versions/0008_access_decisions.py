"""Access decisions taken at the site (site_node.access).

Revision ID: 0008
Revises: 0003
"""

from alembic import op

from site_node.access.store import access_decision

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    access_decision.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    access_decision.drop(op.get_bind(), checkfirst=True)
