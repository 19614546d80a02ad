"""Synthetic hospital exports with planted PHI and known ground truth.

``generate_site(out, patients, seed, style)`` writes DICOM (CT series with DICOM-SEG lesion masks,
some MR, CR, US/SC), a FHIR R4 bulk export, a CSV case-report form with its dictionary, and
``truth.json``. Layout and schema: docs/synthetic.md.
"""

from site_node.synthetic.context import SynthSummary
from site_node.synthetic.generator import generate_site
from site_node.synthetic.styles import STYLES, SiteStyle, get_style

__all__ = ["STYLES", "SiteStyle", "SynthSummary", "generate_site", "get_style"]
