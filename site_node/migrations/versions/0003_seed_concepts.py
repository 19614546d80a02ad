"""Seed vocabulary: add the seed concepts a site database created by an earlier release lacks.

Concepts already present (from the seed or from the site's own Athena export) are left as they are.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy import select

    from site_node.clinical.omop.schema import cdm_table
    from site_node.clinical.vocabulary import seed_concepts

    bind = op.get_bind()
    concept = cdm_table("concept")
    present = set(bind.execute(select(concept.c.concept_id)).scalars())
    missing = [row for row in seed_concepts() if row["concept_id"] not in present]
    if missing:
        bind.execute(concept.insert(), missing)


def downgrade() -> None:
    """Nothing to undo: rows may be referenced by then, and the seed rows are harmless."""
