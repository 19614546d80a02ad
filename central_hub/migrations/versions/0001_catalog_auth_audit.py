"""Catalog, tokens and audit tables.

Revision ID: 0001
Revises:
"""

from alembic import op

from central_hub.audit import AuditEvent
from central_hub.auth.models import Token
from central_hub.catalog.models import CatalogCollection, CatalogState, FacetCell, Site

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = [
    Site.__table__,
    Token.__table__,
    CatalogCollection.__table__,
    FacetCell.__table__,
    CatalogState.__table__,
    AuditEvent.__table__,
]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind, checkfirst=True)
