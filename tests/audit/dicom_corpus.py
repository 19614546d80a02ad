"""Independent planted-PHI DICOM corpus for the audit (built in code from pydicom's bundled test files).

Nothing here reuses the authors' fixtures (site_node/synthetic, tests/site_node/deid). Each file gets
PHI planted where real hospital exports carry it: nested sequences, PN attributes beyond the usual
five, free text with embedded names, private tags under several creators (one with VR UN), overlay
comments, curve groups, DT values with UTC offsets, references to other files of the corpus, and
names in file and folder names.
"""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

#: A UID root used only by this corpus (so that any original UID is easy to find in outputs).
ROOT = "1.2.826.0.1.3680043.8.498.424242"


@dataclass(frozen=True)
class Patient:
    """One planted patient."""

    mrn: str
    family: str
    given: str
    accession: str
    birth: str
    phone: str
    street: str


PATIENTS = (
    Patient(
        "MRN8841207", "Brightwater", "Eleonora", "ACC99317755", "19610704", "5550147", "42 Wisteria Lane"
    ),
    Patient(
        "MRN5520931", "Okonkwolind", "Tobiasz", "ACC20418866", "19790211", "5550199", "7 Quillfeather Row"
    ),
)

#: Values planted in every file (besides the per-patient ones).
COMMON = {
    "other_name": "Aliasperpetua",
    "mother": "Vanderslootm",
    "requesting": "Hollowellam",
    "scheduled": "Schedulerova",
    "reader": "Readerquisth",
    "responsible": "Guardiansonf",
    "military": "Thornquistbrig",
    "region": "Ravensworthcounty",
    "country": "Freedonialand",
    "issuer": "Hollowmereissuer",
    "department": "Hollowmeredept",
    "insurance": "Insurplanzeta",
    "insurance_code": "INS77310",
    "private1": "Privcreatorname",
    "private2": "PRIVMRN66123",
    "private_un": "Unvrsecretname",
    "overlay": "Overlaycomment Brightwater",
    "curve": "Curvelabelname",
    "sr_text": "Srtextvaluename",
    "sr_person": "Srpersonname",
    "proc_meaning": "Proccodemeaningname",
    "req_proc_desc": "Reqprocdescname",
    "pps_desc": "Ppsdescname",
    "allergy": "Allergyhistname",
    "history": "Historyaddrname",
    "protocol": "Protocolnamedr",
    "body_part": "BODYPARTNAMEX",
    "seg_label": "Seglabeldrname",
    "requested_id": "REQPROCID9931",
    "sps_id": "SPSID4471",
    "station_free": "Stationfreetext",
}


@dataclass
class CorpusFile:
    """One written input file and what a checker needs to know about it."""

    path: Path
    patient: Patient
    sop_uid: str
    study_uid: str
    series_uid: str
    expect: str  # "written" | "quarantined" | "burned_in" (OCR-redacted and written, or quarantined)
    native_pixels: bool = False
    refs: list[str] = field(default_factory=list)  # SOP Instance UIDs of other corpus files it references


def planted_values() -> list[str]:
    """Every planted string (names, IDs, accession, address, phone, dates, UIDs come separately)."""
    values = list(COMMON.values())
    for p in PATIENTS:
        values += [p.mrn, p.family, p.given, p.accession, p.phone, p.street, p.birth]
    return values


def _uid(*parts: int) -> str:
    return ROOT + "." + ".".join(str(p) for p in parts)


def _priv(ds: Dataset, group: int, creator: str, offset: int, vr: str, value: object) -> None:
    ds.add_new((group << 16) | 0x0010, "LO", creator)
    ds.add_new((group << 16) | 0x1000 | offset, vr, value)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def plant(ds: Dataset, p: Patient, n: int, study: int, refs: list[str]) -> None:
    """Plant every kind of PHI of this audit into ``ds`` (in place)."""
    c = COMMON
    name = f"{p.family}^{p.given}"
    ds.PatientName = name
    ds.PatientID = p.mrn
    ds.PatientBirthDate = p.birth
    ds.PatientAddress = p.street
    ds.PatientTelephoneNumbers = p.phone
    ds.OtherPatientNames = [f"{c['other_name']}^X", f"{p.family}^E"]
    ds.PatientMotherBirthName = f"{c['mother']}^M"
    ds.RequestingPhysician = f"{c['requesting']}^A"
    ds.ScheduledPerformingPhysicianName = f"{c['scheduled']}^S"
    ds.NameOfPhysiciansReadingStudy = f"{c['reader']}^H"
    ds.PerformedProcedureStepDescription = f"CT CHEST {c['pps_desc']}"
    ds.ImageComments = f"patient {p.given} {p.family} called {p.phone}"
    ds.AdditionalPatientHistory = f"lives at {p.street} {c['history']}"
    ds.Allergies = f"penicillin {c['allergy']}"
    ds.MilitaryRank = c["military"]
    ds.RegionOfResidence = c["region"]
    ds.CountryOfResidence = c["country"]
    ds.PatientInsurancePlanCodeSequence = Sequence([_code(c["insurance_code"], "99LOCAL", c["insurance"])])
    ds.ResponsiblePerson = f"{c['responsible']}^F"
    ds.IssuerOfPatientID = c["issuer"]
    ds.InstitutionalDepartmentName = c["department"]
    ds.InstitutionName = "Saint Hollowmere Hospital"
    ds.AccessionNumber = p.accession
    ds.StudyDescription = f"CT CHEST W CONTRAST for {p.given} {p.family}"
    ds.SeriesDescription = f"AX T1 {p.family}"
    ds.ProtocolName = f"CHEST {c['protocol']}"
    ds.BodyPartExamined = c["body_part"]
    # dates: study 2024-03-17 (+30 days for the second study), DT with a UTC offset
    day = 17 if study == 0 else 16
    month = 3 if study == 0 else 4
    ds.StudyDate = f"2024{month:02d}{day:02d}"
    ds.SeriesDate = ds.StudyDate
    ds.ContentDate = f"2024{month:02d}{day + 1:02d}"
    ds.StudyTime = "083015"
    ds.AcquisitionDateTime = f"2024{month:02d}{day:02d}083015.123456+0100"
    # request attributes with accession, study UID, names, descriptions, procedure codes
    req = Dataset()
    req.AccessionNumber = p.accession
    req.StudyInstanceUID = ds.StudyInstanceUID
    req.RequestedProcedureID = c["requested_id"]
    req.ScheduledProcedureStepID = c["sps_id"]
    req.RequestedProcedureDescription = f"CT {c['req_proc_desc']}"
    req.ScheduledProcedureStepDescription = f"CT for {p.family}"
    req.ScheduledPerformingPhysicianName = f"{c['scheduled']}^R"
    req.RequestedProcedureCodeSequence = Sequence([_code("CTCH1", "99LOCAL", f"CT {c['proc_meaning']}")])
    req.ScheduledProtocolCodeSequence = Sequence([_code("PR1", "99LOCAL", f"{c['proc_meaning']} protocol")])
    _priv(req, 0x0043, "GEMS_PARM_01", 0x01, "LO", p.family)  # private tag inside a sequence item
    ds.RequestAttributesSequence = Sequence([req])
    ds.ProcedureCodeSequence = Sequence([_code("CTCH2", "99LOCAL", f"{c['proc_meaning']} chest")])
    pat = Dataset()
    pat.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"
    pat.ReferencedSOPInstanceUID = _uid(9, n)
    ds.ReferencedPatientSequence = Sequence([pat])
    if refs:
        items = []
        for ref in refs:
            item = Dataset()
            item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            item.ReferencedSOPInstanceUID = ref
            items.append(item)
        ds.ReferencedImageSequence = Sequence(items)
        ds.SourceImageSequence = Sequence([copy.deepcopy(i) for i in items])
    # private tags under several creators; one with VR UN; odd groups incl. 7FD1
    _priv(ds, 0x0009, "ACME_PRIV1", 0x01, "LO", f"{c['private1']} {p.family}")
    _priv(ds, 0x0019, "SIEMENS MR HEADER", 0x02, "SH", c["private2"])
    _priv(ds, 0x0029, "SIEMENS CSA HEADER", 0x10, "OB", f"xx{p.family}xx{p.mrn}".encode())
    _priv(ds, 0x0043, "GEMS_PARM_01", 0x02, "LT", f"note {p.given} {p.family}")
    _priv(ds, 0x7FD1, "GEIIS", 0x10, "UT", f"{p.family} {p.mrn}")
    _priv(ds, 0x0011, "HOSP_UN", 0x01, "UN", f"{c['private_un']}{p.mrn}".encode())
    # overlay comments and curve groups
    ds.add_new(0x60004000, "LT", c["overlay"])
    ds.add_new(0x60000022, "LO", c["overlay"])
    ds.add_new(0x50000022, "LO", c["curve"])
    ds.add_new(0x50002500, "LO", c["curve"])


def add_sr_content(ds: Dataset, p: Patient) -> None:
    """SR content tree: TEXT with a name, PNAME, DATETIME, nested CONTAINER."""
    c = COMMON
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    text.TextValue = f"{c['sr_text']} discussed with {p.given} {p.family}"
    person = Dataset()
    person.RelationshipType = "HAS OBS CONTEXT"
    person.ValueType = "PNAME"
    person.ConceptNameCodeSequence = Sequence([_code("121008", "DCM", "Person Observer Name")])
    person.PersonName = f"{c['sr_person']}^Q"
    when = Dataset()
    when.RelationshipType = "CONTAINS"
    when.ValueType = "DATETIME"
    when.ConceptNameCodeSequence = Sequence([_code("111526", "DCM", "DateTime Started")])
    when.DateTime = "20240317093000+0100"
    inner = Dataset()
    inner.RelationshipType = "CONTAINS"
    inner.ValueType = "CONTAINER"
    inner.ConceptNameCodeSequence = Sequence([_code("121070", "DCM", "Findings")])
    inner.ContinuityOfContent = "SEPARATE"
    inner.ContentSequence = Sequence([copy.deepcopy(text)])
    existing = list(ds.get("ContentSequence", []))
    ds.ContentSequence = Sequence(existing + [text, person, when, inner])


def _fresh_meta(ds: Dataset, ts: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = UID(ROOT + ".1")
    ds.file_meta = meta


#: (pydicom test file, how to write it back, expected outcome, native pixels comparable)
BASES: list[tuple[str, str, str, bool]] = [
    ("CT_small.dcm", "keep", "written", True),
    ("CT_small.dcm", "implicit", "written", True),
    ("CT_small.dcm", "deflate", "written", True),
    ("CT_small.dcm", "nopreamble", "written", True),
    ("MR_small.dcm", "keep", "written", True),
    ("MR_small_bigendian.dcm", "keep", "written", True),
    ("MR_small_expb.dcm", "keep", "written", True),
    ("MR_small_RLE.dcm", "keep", "written", False),
    ("MR_small_jp2klossless.dcm", "keep", "written", False),
    ("MR_small_jpeg_ls_lossless.dcm", "keep", "written", False),
    ("693_J2KI.dcm", "keep", "written", False),
    ("rtplan.dcm", "keep", "written", False),
    ("rtdose.dcm", "keep", "written", True),
    ("rtdose_rle.dcm", "keep", "written", False),
    ("rtdose_expb.dcm", "keep", "written", True),
    ("rtstruct.dcm", "explicit", "written", False),
    ("liver_1frame.dcm", "keep", "written", False),
    ("test-SR.dcm", "keep", "written", False),
    ("reportsi.dcm", "keep", "written", False),
    ("examples_overlay.dcm", "keep", "written", True),
    # burned-in risk (ultrasound, secondary capture): OCR-redacted and written, or quarantined
    ("ExplVR_BigEnd.dcm", "keep", "burned_in", False),
    ("examples_palette.dcm", "keep", "burned_in", False),
    ("SC_rgb_rle.dcm", "keep", "burned_in", False),
    ("JPEG-lossy.dcm", "keep", "burned_in", False),
    ("image_dfl.dcm", "keep", "burned_in", False),
]


def _write(ds: Dataset, path: Path, how: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
    elif how == "explicit":
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=True)
    elif how == "deflate":
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    elif how == "nopreamble":
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        path.write_bytes(buf.getvalue()[132:])  # file meta first, no preamble, no DICM
    else:
        ds.save_as(path, enforce_file_format=True)


def build_corpus(root: Path) -> list[CorpusFile]:
    """Write the corpus under ``root``; names of patients in folder and file names."""
    files: list[CorpusFile] = []
    first_ct_sop: dict[str, str] = {}
    for n, (base, how, expect, native) in enumerate(BASES):
        p = PATIENTS[n % 2]
        study = (n // 2) % 2
        ds = pydicom.dcmread(get_testdata_file(base), force=True)
        if "SOPClassUID" not in ds:
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
        sop, st, se = _uid(1, n), _uid(2, PATIENTS.index(p), study), _uid(3, n)
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = sop, st, se
        ds.FrameOfReferenceUID = _uid(4, n)
        if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
            _fresh_meta(ds, str(ExplicitVRLittleEndian))
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        refs = [first_ct_sop[p.mrn]] if p.mrn in first_ct_sop and expect == "written" else []
        plant(ds, p, n, study, refs)
        if base in ("test-SR.dcm", "reportsi.dcm"):
            add_sr_content(ds, p)
        if base == "liver_1frame.dcm":
            for seg in ds.get("SegmentSequence", []):
                seg.SegmentLabel = f"lesion {COMMON['seg_label']}"
        folder = root / f"{p.family}^{p.given}" / f"{p.mrn}_{p.accession}" / f"study{study}"
        path = folder / f"{p.family}_{p.given}_{p.mrn}_{n:02d}.dcm"
        _write(ds, path, how)
        files.append(CorpusFile(path, p, sop, st, se, expect, native, refs))
        if expect == "written" and base == "CT_small.dcm" and p.mrn not in first_ct_sop:
            first_ct_sop[p.mrn] = sop
    # one burned-in CT (flag set explicitly), and one CT screen capture by ImageType
    for k, (flag, image_type) in enumerate((("YES", None), (None, ["DERIVED", "SECONDARY", "SCREEN SAVE"]))):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        p = PATIENTS[0]
        ds.SOPInstanceUID = _uid(5, k)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(6, k), _uid(7, k)
        plant(ds, p, 100 + k, 0, [])
        if flag:
            ds.BurnedInAnnotation = flag
        if image_type:
            ds.ImageType = image_type
        path = root / f"{p.family}^{p.given}" / "risk" / f"{p.family}_risk_{k}.dcm"
        _write(ds, path, "keep")
        files.append(
            CorpusFile(path, p, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, "burned_in")
        )
    return files


def latin1_file(root: Path) -> tuple[Path, list[bytes]]:
    """A Latin-1 (ISO_IR 100) MR whose names have accents; returns the path and the encoded names."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientID = "MRN3300771"
    ds.PatientName = "Müllerström^Åsa"
    ds.StudyDescription = "IRM cérébrale Müllerström"
    ds.ImageComments = "Åsa Müllerström"
    ds.OtherPatientNames = "Ærøskøbing^Åsa"
    ds.SOPInstanceUID = _uid(8, 1)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(8, 2), _uid(8, 3)
    path = root / "Müllerström" / "mr.dcm"
    _write(ds, path, "keep")
    needles = [s.encode("latin-1") for s in ("Müllerström", "Ærøskøbing", "Åsa")]
    needles += [s.encode("utf-8") for s in ("Müllerström", "Ærøskøbing")]
    return path, needles


def bad_inputs(root: Path) -> dict[str, Path]:
    """Inputs a real export folder holds that are not (good) DICOM instances."""
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    good = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Truncatedname^Zed"
    ds.PatientID = "MRN7070707"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    out["truncated"] = root / "Truncatedname_Zed.dcm"
    out["truncated"].write_bytes(raw[: len(raw) - 3000])
    out["truncated_header"] = root / "trunc_header.dcm"
    out["truncated_header"].write_bytes(raw[:600])
    out["garbage"] = root / "garbage.dcm"
    out["garbage"].write_bytes(os.urandom(4096))
    out["zero"] = root / "zero.dcm"
    out["zero"].write_bytes(b"")
    out["text"] = root / "notes_Truncatedname.txt"
    out["text"].write_text("Truncatedname Zed MRN7070707 seen 2024-03-17\n")
    out["dicomdir"] = root / "DICOMDIR"
    out["dicomdir"].write_bytes(Path(get_testdata_file("DICOMDIR")).read_bytes())
    out["dir_named_dcm"] = root / "folder.dcm"
    out["dir_named_dcm"].mkdir()
    (out["dir_named_dcm"] / "inner.dcm").write_bytes(good)
    loop = root / "loop"
    loop.mkdir()
    (loop / "self").symlink_to(loop, target_is_directory=True)
    (root / "a_link").symlink_to(root / "b_link")
    (root / "b_link").symlink_to(root / "a_link")
    out["dangling"] = root / "dangling.dcm"
    out["dangling"].symlink_to(root / "does-not-exist.dcm")
    out["unreadable"] = root / "unreadable.dcm"
    out["unreadable"].write_bytes(good + b"\x00\x00")  # distinct content (duplicates: own test)
    out["unreadable"].chmod(0)
    out["no_meta"] = root / "no_meta.dcm"
    out["no_meta"].write_bytes(Path(get_testdata_file("no_meta.dcm")).read_bytes())
    return out


def all_elements(ds: Dataset) -> list[DataElement]:
    """Every element of ``ds`` at any depth, private ones included."""
    found: list[DataElement] = []
    for elem in ds.iterall():
        found.append(elem)
    for elem in getattr(ds, "file_meta", Dataset()).iterall():
        found.append(elem)
    return found
