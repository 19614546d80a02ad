"""Federated job table (central_hub.jobs).

Revision ID: 0101_jobs
Revises: 0001
"""

from alembic import op

from central_hub.jobs.models import HubJob

revision = "0101_jobs"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    HubJob.__table__.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    HubJob.__table__.drop(op.get_bind(), checkfirst=True)
