"""Clinical data of a site: FHIR R4 and CSV ingest, keyed pseudonymization, OMOP CDM 5.4 + MI-CDM.

See ``docs/clinical.md``. Subpackages: ``fhir`` (reader, workers, one mapper module per resource type,
the single writer), ``omop`` (specification, schema, observation periods, imaging tables, report).
"""
