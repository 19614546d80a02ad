"""Data files of the de-identification stage (see README.md in this folder)."""
