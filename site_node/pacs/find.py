"""``pacs find``: C-FIND or QIDO-RS study search, for the site admin's eyes only.

The matches carry identifiers (patient ID and name, accession number); they are returned to the CLI,
which prints them on the admin's terminal. Nothing here logs them; the audit row of the search keeps
which filters were used (their names, never their values) and how many studies matched.
"""

from __future__ import annotations

import datetime as dt
import re

from pydicom.dataset import Dataset

from common.errors import InputError
from site_node.pacs.dimse import DimseClient, study_query
from site_node.pacs.nodes import PacsNode
from site_node.pacs.web import WebClient

COLUMNS = (
    "AccessionNumber",
    "PatientID",
    "PatientName",
    "StudyDate",
    "ModalitiesInStudy",
    "StudyDescription",
    "NumberOfStudyRelatedInstances",
    "StudyInstanceUID",
)


def _date(value: str | None, option: str) -> str:
    if not value:
        return ""
    text = value.replace("-", "")
    if not re.fullmatch(r"\d{8}", text):
        raise InputError("dates are YYYY-MM-DD or YYYYMMDD", field=option)
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise InputError("not a calendar date", field=option) from None
    return text


def build_filters(
    accession: str | None = None,
    patient_id: str | None = None,
    modality: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, str]:
    """DICOM matching keys (keyword -> value) of a study search.

    Raises:
        InputError: a date is malformed, or since is after until.
    """
    filters: dict[str, str] = {}
    if accession:
        filters["AccessionNumber"] = accession
    if patient_id:
        filters["PatientID"] = patient_id
    if modality:
        filters["ModalitiesInStudy"] = modality.upper()
    start, end = _date(since, "--since"), _date(until, "--until")
    if start and end and start > end:
        raise InputError("--since is after --until", field="--since")
    if start or end:
        filters["StudyDate"] = f"{start}-{end}"
    return filters


def _row(ds: Dataset) -> dict[str, str]:
    out = {}
    for keyword in COLUMNS:
        value = ds.get(keyword, "")
        if keyword == "ModalitiesInStudy" and not isinstance(value, str):
            value = "\\".join(str(v) for v in value)
        out[keyword] = str(value or "")
    return out


def find_studies(
    node: PacsNode, own_aet: str, filters: dict[str, str], via: str, timeout: float
) -> list[dict[str, str]]:
    """Studies matching ``filters`` on ``node`` (C-FIND, or QIDO-RS with ``via='dicomweb'``).

    Returns:
        One dict per study with the :data:`COLUMNS` (identifiers: for the terminal only).

    Raises:
        PacsError: the PACS could not be queried.
    """
    if via == "dicomweb":
        found = WebClient(node, timeout).find_studies(filters)
    else:
        found = DimseClient(node, own_aet, timeout).find(study_query(**filters))
    return sorted((_row(ds) for ds in found), key=lambda r: (r["StudyDate"], r["AccessionNumber"]))
