"""One input file: read and check it, de-identify it, write it atomically or quarantine it.

This runs in worker processes and touches no database: it returns a :class:`FileResult` that the
parent records. Outputs are written to a temporary name and renamed, so an interrupted run never
leaves a half-written instance under a final name.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, AllTransferSyntaxes, DeflatedExplicitVRLittleEndian

from common import __version__
from common.crypto import sha256_hex
from site_node.deid import burned_in
from site_node.deid.engine import DeidContext, QuarantineError, deidentify
from site_node.deid.risk import burned_in_risk
from site_node.deid.writer import encode_file
from site_node.ingest.journal import JournalEntry
from site_node.ingest.quarantine import Quarantine
from site_node.ingest.source import TMP_MARK, SourceItem, source_pseudonym, unreadable_key

UNDEFINED = 0xFFFFFFFF
IMPLEMENTATION_CLASS_UID = "2.25.245046893702302786468862470361935349297"
IMPLEMENTATION_VERSION = f"FEDIMAGING_{__version__}"[:16]
_KNOWN_TS = frozenset(str(ts) for ts in AllTransferSyntaxes)
_VALID_VRS = frozenset(
    {
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FD",
        "FL",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
        "OB or OW",
        "US or SS",
        "US or OW",
        "US or SS or OW",
    }
)
_FIXED = {
    "US": 2,
    "SS": 2,
    "UL": 4,
    "SL": 4,
    "FL": 4,
    "FD": 8,
    "AT": 4,
    "UV": 8,
    "SV": 8,
    "OW": 2,
    "OF": 4,
    "OD": 8,
    "OL": 4,
    "OV": 8,
}
_SAFE_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_DATASET_STARTS = frozenset(
    {b"\x08\x00", b"\x00\x08", b"\x10\x00", b"\x00\x10", b"\x18\x00", b"\x20\x00", b"\x28\x00"}
)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@dataclass
class FileResult(JournalEntry):
    """What happened to one input file (no data values, only pseudonyms and tag names).

    ``source_name`` is the keyed pseudonym of the source id (see ``source_pseudonym``), never the path.
    """

    reid: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


def _tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _classify_header(raw: bytes) -> None:
    if not raw:
        raise QuarantineError("empty_file", "the file is empty")
    if raw[128:132] == b"DICM" or raw[:2] == b"\x02\x00":
        return
    if len(raw) >= 8 and raw[:2] in _DATASET_STARTS:
        raise QuarantineError("missing_file_meta", "no DICOM file meta information", field="(0002,0010)")
    raise QuarantineError("not_dicom", "not a DICOM file")


def _check_elements(ds: Dataset, size: int, deflated: bool) -> None:
    """Detect truncation and malformed element headers without decoding values."""
    last_tag, last_end = None, None
    for tag, elem in ds._dict.items():
        last_tag, last_end = tag, None
        if not isinstance(elem, RawDataElement):
            continue  # eagerly parsed (sequences, character set): complete, end unknown
        vr, length = elem.VR, elem.length
        if vr is not None and vr not in _VALID_VRS:
            raise QuarantineError("invalid_vr", "an element has an unknown VR", field=_tag_name(tag))
        if length != UNDEFINED and elem.value is not None and len(elem.value) != length:
            raise QuarantineError("truncated", "the file ends inside an element", field=_tag_name(tag))
        unit = _FIXED.get(vr or "")
        if unit and length != UNDEFINED and length % unit:
            raise QuarantineError(
                "invalid_length", "an element length does not fit its VR", field=_tag_name(tag)
            )
        last_end = None if length == UNDEFINED else elem.value_tell + length
    if not deflated and last_end is not None and last_end != size and last_tag is not None:
        raise QuarantineError(
            "truncated", "the file ends after an incomplete element", field=_tag_name(last_tag)
        )


def _check_pixels(ds: Dataset) -> None:
    if "Rows" in ds and "Columns" in ds and not any(t in ds._dict for t in _PIXEL_TAGS):
        if str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1"):
            raise QuarantineError("truncated", "image without pixel data", field="(7FE0,0010)")


def read_dataset(raw: bytes) -> Dataset:
    """Parse and check one file's bytes.

    Raises:
        QuarantineError: not DICOM, no file meta, unknown transfer syntax, truncated or malformed.
    """
    _classify_header(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    except Exception:
        raise QuarantineError("unreadable", "pydicom could not parse the file") from None
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "").strip("\x00 ")
    if not ts:
        raise QuarantineError("missing_file_meta", "no Transfer Syntax UID", field="(0002,0010)")
    if ts not in _KNOWN_TS:
        raise QuarantineError("unsupported_transfer_syntax", "unknown transfer syntax", field="(0002,0010)")
    _check_elements(ds, len(raw), ts == DeflatedExplicitVRLittleEndian)
    _check_pixels(ds)
    return ds


def _component(value: object, ctx: DeidContext, missing: str) -> str:
    """A UID usable as a folder or file name; anything else (possible with Retain UIDs) is remapped."""
    text = str(value or "").strip().rstrip("\x00")
    if not text:
        return missing
    return text if _SAFE_UID.match(text) else ctx.new_uid(text)


def relative_output(ds: Dataset, patient_pseudonym: str, ctx: DeidContext) -> Path:
    """``<patient>/<study>/<series>/<instance>.dcm`` built from pseudonyms and remapped UIDs only."""
    study = _component(ds.get("StudyInstanceUID"), ctx, "nostudy")
    series = _component(ds.get("SeriesInstanceUID"), ctx, "noseries")
    instance = _component(ds.get("SOPInstanceUID"), ctx, "noinstance")
    return Path(patient_pseudonym, study, series, f"{instance}.dcm")


def _file_meta(ds: Dataset, ts: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(str(ds.get("SOPClassUID", "")))
    meta.MediaStorageSOPInstanceUID = UID(str(ds.SOPInstanceUID))
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


_MADE_DIRS: set[str] = set()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same folder, then rename."""
    parent = str(path.parent)
    if parent not in _MADE_DIRS:
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(_MADE_DIRS) > 100_000:
            _MADE_DIRS.clear()
        _MADE_DIRS.add(parent)
    tmp = path.with_name(f"{TMP_MARK}{os.getpid()}-{path.name}")
    try:
        fh = open(tmp, "wb")  # noqa: SIM115 - closed below
    except FileNotFoundError:  # the folder was removed since it was cached
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(tmp, "wb")  # noqa: SIM115
    with fh:
        fh.write(data)
    os.replace(tmp, path)


def deidentify_bytes(raw: bytes, ctx: DeidContext) -> tuple[bytes, Path, str, dict[str, str]]:
    """De-identify one file's bytes: (output bytes, relative output path, patient pseudonym, originals).

    Raises:
        QuarantineError: the file is bad or at risk of burned-in text.
    """
    ds = read_dataset(raw)
    ts = str(ds.file_meta.TransferSyntaxUID)
    risk = burned_in_risk(ds, ctx.options.cleared_burned_in)
    redaction = None
    if risk:  # burned-in text: OCR redaction or quarantine (site_node/deid/burned_in.py)
        opts = ctx.options
        redaction = burned_in.handle_risk(ds, risk, opts.burned_in_text, opts.burned_in_banners)
        ts = str(redaction.transfer_syntax)
    result = deidentify(ds, ctx)
    if redaction is not None:
        burned_in.mark_cleaned(ds, redaction)
    ds.file_meta = _file_meta(ds, ts)
    try:
        data = encode_file(ds)
    except Exception:
        raise QuarantineError("unwritable", "the de-identified dataset could not be encoded") from None
    rel = relative_output(ds, result.patient_pseudonym, ctx)
    return data, rel, result.patient_pseudonym, result.originals


def process_file(
    item: SourceItem,
    ctx: DeidContext,
    out_dir: Path,
    quarantine: Quarantine,
    done: frozenset[str] | set[str],
    stage: str = "dicom",
    run_id: str | None = None,
) -> FileResult:
    """Handle one input item end to end; never raises for bad input.

    Args:
        item: the file or in-memory instance (its source id is PHI; only its pseudonym is kept).
        ctx: the de-identification context.
        out_dir: the output folder.
        quarantine: where bad or risky inputs are set aside (content-addressed).
        done: content hashes an earlier run handled (skipped after hashing).
        stage: the journal and quarantine stage (``dicom`` or ``dicom_anon``).
        run_id: the audited run (kept in the quarantine reason record).
    """
    label = source_pseudonym(ctx.pz, item.source_id)
    try:
        raw = item.read()
    except OSError:  # journaled under a name-derived key: the content could not be hashed
        return FileResult(label, unreadable_key(label), "quarantined", "unreadable_file", "file")
    sha = sha256_hex(raw)
    if sha in done:
        return FileResult(label, sha, "skipped")
    try:
        try:
            data, rel, pseudonym, originals = deidentify_bytes(raw, ctx)
        except QuarantineError:
            raise
        except Exception as exc:  # never let one file stop the run
            raise QuarantineError("unexpected_error", f"unexpected {type(exc).__name__}") from None
    except QuarantineError as exc:
        return quarantine_result(quarantine, stage, raw, sha, exc, label, run_id)
    atomic_write(out_dir / rel, data)
    return FileResult(
        label,
        sha,
        "written",
        output_path=str(rel),
        patient_pseudonym=pseudonym,
        reid=_reid(ctx, pseudonym, originals),
    )


def quarantine_result(
    quarantine: Quarantine,
    stage: str,
    raw: bytes,
    sha: str,
    error: QuarantineError,
    label: str,
    run_id: str | None,
) -> FileResult:
    """Set a refused input aside and return its journal entry (the reason names the tag, never a value)."""
    entry = quarantine.put(
        stage,
        raw,
        error.reason,
        field=error.field,
        message=error.public_message,
        source=label,
        run_id=run_id,
    )
    return FileResult(label, sha, "quarantined", error.reason, error.field, f"{stage}/{entry.id}.bin")


ReidRows = list[tuple[str, str, dict[str, str]]]


def _reid(ctx: DeidContext, pseudonym: str, originals: dict[str, str]) -> ReidRows:
    rows = [
        (pseudonym, "patient", {"PatientID": originals["PatientID"], "PatientName": originals["PatientName"]})
    ]
    if originals["AccessionNumber"]:
        rows.append(
            (
                ctx.pseudonym("accession", originals["AccessionNumber"]),
                "accession",
                {"AccessionNumber": originals["AccessionNumber"], "PatientID": originals["PatientID"]},
            )
        )
    if originals["StudyInstanceUID"]:
        rows.append(
            (
                ctx.new_uid(originals["StudyInstanceUID"]),
                "study",
                {
                    "StudyInstanceUID": originals["StudyInstanceUID"],
                    "PatientID": originals["PatientID"],
                    "AccessionNumber": originals["AccessionNumber"],
                },
            )
        )
    return rows
