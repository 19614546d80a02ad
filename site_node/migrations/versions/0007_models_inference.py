"""Model store and clinical inference runs (site_node.models).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from site_node.models.tables import inference_run, site_model

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    site_model.create(bind, checkfirst=True)
    inference_run.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    inference_run.drop(bind, checkfirst=True)
    site_model.drop(bind, checkfirst=True)
