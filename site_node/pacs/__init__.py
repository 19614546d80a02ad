"""The PACS connector: query/retrieve by accession (DIMSE and DICOMweb) and a C-STORE receiver.

Everything retrieved goes straight to de-identification; identifiers reach the terminal of the site
admin (``pacs find``) and the PHI folder (re-identification table), never a log or the journal.
"""
