"""Pixel-data risk: images that often carry burned-in patient text are quarantined.

Header de-identification cannot remove text drawn into the pixels. An instance is set aside with
reason ``burned_in_risk`` when it says so itself (BurnedInAnnotation = YES) or when its modality or
SOP class is one where burned-in text is common: ultrasound, secondary capture (screenshots, dose
screens), encapsulated documents, video. A site that has reviewed a class (or cleans its pixels
elsewhere) clears it in ``site.toml``: ``[deid] cleared_burned_in = ["US", "1.2.840.10008.5.1.4.1.1.7"]``
(modality codes or SOP Class UIDs; ``"BurnedInAnnotation"`` clears the explicit flag).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from pydicom.dataset import Dataset

RISKY_MODALITIES = frozenset({"US", "IVUS", "XC", "ES", "GM", "SC", "DOC"})
RISKY_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # US Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
        "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic
    }
)


_TAGS = {
    "Modality": 0x00080060,
    "SOPClassUID": 0x00080016,
    "BurnedInAnnotation": 0x00280301,
    "ImageType": 0x00080008,
}


def _text(ds: Dataset, keyword: str) -> str:
    elem = cast("dict[int, Any]", ds._dict).get(_TAGS[keyword])
    if elem is None:
        return ""
    raw = getattr(elem, "value", None)
    if isinstance(raw, bytes) and raw.isascii() and keyword != "ImageType":  # single values, raw bytes
        return raw.decode("ascii").strip(" \x00").strip().upper()
    value = ds.get(keyword)
    return "" if value is None else str(value).strip().upper()


def burned_in_risk(ds: Dataset, cleared: Iterable[str]) -> str | None:
    """The attribute that flags ``ds`` as at risk, or None when it is safe or its class is cleared."""
    cleared_set = {c.strip().upper() for c in cleared}
    modality = _text(ds, "Modality")
    sop_class = _text(ds, "SOPClassUID")
    if modality in cleared_set or sop_class in cleared_set:
        return None
    if _text(ds, "BurnedInAnnotation") == "YES" and "BURNEDINANNOTATION" not in cleared_set:
        return "(0028,0301)"
    if sop_class in RISKY_SOP_CLASSES:
        return "(0008,0016)"
    if modality in RISKY_MODALITIES:
        return "(0008,0060)"
    image_type = _text(ds, "ImageType")
    if "SCREEN" in image_type or ("DOSE" in image_type and "REPORT" in image_type):
        return "(0008,0008)"
    return None
