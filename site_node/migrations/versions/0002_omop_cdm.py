"""OMOP CDM 5.4 + MI-CDM imaging tables (built from the field-level specification) and the seed vocabulary.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from site_node.clinical.omop.schema import omop_metadata

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from site_node.clinical.vocabulary import load_athena, seed_folder

    bind = op.get_bind()
    omop_metadata.create_all(bind, checkfirst=True)
    from sqlalchemy import select

    from site_node.clinical.omop.schema import cdm_table

    concept = cdm_table("concept")
    if bind.execute(select(concept.c.concept_id).where(concept.c.concept_id == 0)).first() is None:
        _load_seed(bind, load_athena, seed_folder())


def _load_seed(bind, load_athena, folder) -> None:  # type: ignore[no-untyped-def]
    """Load the seed vocabulary through the migration's own connection."""

    class _Proxy:
        """An Engine look-alike whose begin() reuses the migration connection."""

        def begin(self):  # type: ignore[no-untyped-def]
            from contextlib import nullcontext

            return nullcontext(bind)

    load_athena(_Proxy(), folder)  # type: ignore[arg-type]


def downgrade() -> None:
    bind = op.get_bind()
    omop_metadata.drop_all(bind, checkfirst=True)
