"""Cohort summaries for the hub catalog: counting from OMOP, small-cell suppression, publishing."""
