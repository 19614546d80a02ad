"""The OMOP CDM 5.4 and MI-CDM tables of the site database, built from the official specification."""
