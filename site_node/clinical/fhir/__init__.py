"""FHIR R4 -> OMOP CDM 5.4 (HL7 FHIR-to-OMOP IG): ingest orchestration, workers, mappers, writer."""
