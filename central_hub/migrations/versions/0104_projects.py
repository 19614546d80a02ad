"""Projects, members, access requests and site decisions; the project of a job.

Revision ID: 0104_projects
Revises: 0101_jobs
"""

import sqlalchemy as sa
from alembic import op

from central_hub.projects.models import AccessDecision, AccessRequest, Project, ProjectMember

revision = "0104_projects"
down_revision = "0103_models"
branch_labels = None
depends_on = None

_TABLES = [Project.__table__, ProjectMember.__table__, AccessRequest.__table__, AccessDecision.__table__]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind, checkfirst=True)
    # hub_job was created from the model; a database made before projects lacks the column
    columns = {c["name"] for c in sa.inspect(bind).get_columns("hub_job")}
    if "project" not in columns:
        with op.batch_alter_table("hub_job") as batch:
            batch.add_column(sa.Column("project", sa.String(64), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind, checkfirst=True)
