"""Curation: de-identified DICOM to a QC-checked NIfTI training set with a MONAI datalist."""

from site_node.curation.curate import CurationReport, curate_site, curated_dir, split_patients
from site_node.curation.readiness import Readiness, check_readiness, require_ready

__all__ = [
    "CurationReport",
    "Readiness",
    "check_readiness",
    "curate_site",
    "curated_dir",
    "require_ready",
    "split_patients",
]
