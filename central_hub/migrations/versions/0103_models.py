"""Model registry: published model versions and per-site evaluations (central_hub.models).

Revision ID: 0103_models
Revises: 0101_jobs
"""

from alembic import op

from central_hub.models.models import HubModel, ModelEvaluation

revision = "0103_models"
down_revision = "0102_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    HubModel.__table__.create(bind, checkfirst=True)
    ModelEvaluation.__table__.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    ModelEvaluation.__table__.drop(bind, checkfirst=True)
    HubModel.__table__.drop(bind, checkfirst=True)
