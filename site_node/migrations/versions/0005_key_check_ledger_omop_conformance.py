"""Key check value, write-ahead ledger, OMOP conformance of databases made by earlier releases.

* ``site_key_check`` (the site key's check value; filled by the next command that loads the key);
* ``outbound_ledger.completed_at`` (rows are now written ``pending`` before bytes leave);
* ``note_nlp``: the column created as ``"offset"`` (quotes in its name) is renamed ``offset``;
* the 25 CDM columns the official DDL makes NUMERIC (created as double precision / FLOAT before)
  become NUMERIC: ``ALTER COLUMN ... TYPE NUMERIC`` on PostgreSQL; on SQLite, which cannot change a
  column's type, each such table is copied aside, re-created from the schema and copied back in the
  same transaction (foreign keys are deferred, so children keep pointing at the rebuilt table).

* seed vocabulary rows an earlier release lacks (vocabulary and concept class ``CDM``, concept
  756265 "OMOP CDM Version 5.4", for ``cdm_source.cdm_version_concept_id``) and the seed's version on
  the VOCABULARY row ``None`` when it is empty (``cdm_source.vocabulary_version`` reads it).

``cdm_source`` is filled by ``open_site`` (it needs the site id, which the migration does not know).
Every step checks the current shape first: a database created by this release is left as it is.

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from site_node.db import site_key_check

    bind = op.get_bind()
    site_key_check.create(bind, checkfirst=True)
    inspector = sa.inspect(bind)
    if "completed_at" not in {c["name"] for c in inspector.get_columns("outbound_ledger")}:
        op.add_column("outbound_ledger", sa.Column("completed_at", sa.DateTime(timezone=True)))
    if inspector.has_table("note_nlp"):
        _rename_offset(bind, inspector)
    _numeric_columns(bind, inspector)
    if inspector.has_table("concept"):
        _seed_rows(bind)


def _seed_rows(bind: sa.Connection) -> None:
    from site_node.clinical.omop.schema import cdm_table
    from site_node.clinical.vocabulary import seed_rows

    for name, key in (
        ("vocabulary", "vocabulary_id"),
        ("concept_class", "concept_class_id"),
        ("concept", "concept_id"),
    ):
        table = cdm_table(name)
        present = set(bind.execute(sa.select(table.c[key])).scalars())
        missing = [row for row in seed_rows(name) if row[key] not in present]
        if missing:
            bind.execute(table.insert(), missing)
    vocabulary = cdm_table("vocabulary")
    seed_version = next(
        r["vocabulary_version"] for r in seed_rows("vocabulary") if r["vocabulary_id"] == "None"
    )
    bind.execute(
        vocabulary.update()
        .where(vocabulary.c.vocabulary_id == "None")
        .where(sa.or_(vocabulary.c.vocabulary_version.is_(None), vocabulary.c.vocabulary_version == ""))
        .values(vocabulary_version=seed_version)
    )


def _rename_offset(bind: sa.Connection, inspector: sa.Inspector) -> None:
    names = {c["name"] for c in inspector.get_columns("note_nlp")}
    if '"offset"' in names and "offset" not in names:
        quote = bind.dialect.identifier_preparer.quote_identifier
        op.execute(
            f"ALTER TABLE note_nlp RENAME COLUMN {quote(chr(34) + 'offset' + chr(34))} TO {quote('offset')}"
        )


def _float_columns(inspector: sa.Inspector) -> dict[str, list[str]]:
    """Table -> its columns that should be NUMERIC but are still FLOAT / double precision."""
    from site_node.clinical.omop.schema import CDM_TABLES

    out: dict[str, list[str]] = {}
    for name, table in CDM_TABLES.items():
        wanted = [
            c.name
            for c in table.columns
            if isinstance(c.type, sa.Numeric) and not isinstance(c.type, sa.Float)
        ]
        if not wanted or not inspector.has_table(name):
            continue
        present = {c["name"]: c["type"] for c in inspector.get_columns(name)}
        stale = [c for c in wanted if c in present and isinstance(present[c], sa.Float)]
        if stale:
            out[name] = stale
    return out


def _numeric_columns(bind: sa.Connection, inspector: sa.Inspector) -> None:
    from site_node.clinical.omop.schema import CDM_TABLES

    stale = _float_columns(inspector)
    quote = bind.dialect.identifier_preparer.quote_identifier
    for name, columns in stale.items():
        if bind.dialect.name != "sqlite":
            for column in columns:
                op.execute(
                    f"ALTER TABLE {quote(name)} ALTER COLUMN {quote(column)} TYPE NUMERIC "
                    f"USING {quote(column)}::numeric"
                )
            continue
        table = CDM_TABLES[name]
        kept = ", ".join(quote(c["name"]) for c in inspector.get_columns(name) if c["name"] in table.c)
        aside = f"_numeric_0005_{name}"
        # names come from the CDM specification and the database's own catalog, never from data
        op.execute(f"CREATE TABLE {quote(aside)} AS SELECT * FROM {quote(name)}")  # noqa: S608
        for index in inspector.get_indexes(name):
            op.execute(f"DROP INDEX IF EXISTS {quote(index['name'])}")
        op.execute(f"DROP TABLE {quote(name)}")
        table.create(bind)  # with its indexes
        op.execute(f"INSERT INTO {quote(name)} ({kept}) SELECT {kept} FROM {quote(aside)}")  # noqa: S608
        op.execute(f"DROP TABLE {quote(aside)}")


def downgrade() -> None:
    """Nothing to undo that would be safe: NUMERIC holds every value FLOAT held, and the names stay."""
