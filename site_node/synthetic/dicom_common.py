"""Shared DICOM building blocks: UIDs, the patient/study/series header with planted PHI, writing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from site_node.synthetic.people import Patient, Person
from site_node.synthetic.styles import SiteStyle
from site_node.synthetic.truth import PhiRegistry


class UidFactory:
    """Deterministic UIDs under the hospital's root: ``<root>.<seed>.<kind>.<serial>`` (7-digit serial)."""

    KINDS = {"study": 1, "series": 2, "instance": 3, "frame": 4, "dimension": 5}

    def __init__(self, root: str, seed: int) -> None:
        self.root = f"{root}.{seed}"
        # fixed-width serials: no UID is a prefix of another, so byte scans for one UID are exact
        self._counter = 1_000_000

    def new(self, kind: str) -> str:
        """Return the next UID of ``kind`` (study, series, instance, frame, dimension)."""
        self._counter += 1
        return f"{self.root}.{self.KINDS[kind]}.{self._counter}"

    @property
    def implementation_class_uid(self) -> str:
        """Implementation Class UID written to the file meta of every file."""
        return f"{self.root}.0.1"


@dataclass
class StudyContext:
    """What every series of one study shares."""

    patient: Patient
    style: SiteStyle
    study_uid: str
    accession: str
    when: dt.datetime
    description: str
    study_id: str
    referring: Person
    performing: Person
    operator: Person
    frame_of_reference_uid: str
    station: str
    series: list[dict] = field(default_factory=list)

    @property
    def date(self) -> str:
        """DICOM DA of the study."""
        return self.when.strftime("%Y%m%d")

    @property
    def time(self) -> str:
        """DICOM TM of the study."""
        return self.when.strftime("%H%M%S")


def age_string(birth: dt.date, when: dt.date) -> str:
    """DICOM AS age (``065Y``)."""
    years = when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def header(
    ctx: StudyContext,
    modality: str,
    series_uid: str,
    series_number: int,
    series_description: str,
    sop_class: str,
) -> tuple[Dataset, list[tuple[str, str, str]]]:
    """Build the shared header of one series and the PHI planted in it.

    Returns:
        The dataset (without instance-level attributes) and ``(value, kind, field)`` triples.
    """
    p, s = ctx.patient, ctx.style
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = ctx.date
    ds.InstanceCreationTime = ctx.time
    ds.SOPClassUID = sop_class
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = ctx.date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = ctx.time
    ds.AccessionNumber = ctx.accession
    ds.Modality = modality
    ds.Manufacturer = s.manufacturer
    ds.InstitutionName = s.institution
    ds.InstitutionAddress = s.institution_address
    ds.ReferringPhysicianName = ctx.referring.dicom
    ds.StationName = ctx.station
    ds.StudyDescription = ctx.description
    ds.SeriesDescription = series_description
    ds.PerformingPhysicianName = ctx.performing.dicom
    ds.OperatorsName = ctx.operator.dicom
    ds.ManufacturerModelName = s.model
    ds.PatientName = p.person.dicom
    ds.PatientID = p.mrn
    ds.IssuerOfPatientID = s.institution
    ds.PatientBirthDate = p.birth_date.strftime("%Y%m%d")
    ds.PatientSex = p.person.sex
    other = Dataset()
    other.PatientID = p.ssn
    other.IssuerOfPatientID = "US SSA"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientAge = age_string(p.birth_date, ctx.when.date())
    ds.PatientAddress = p.address_dicom
    ds.PatientTelephoneNumbers = p.phone
    ds.PatientComments = f"Patient {p.person.full} prefers morning appointments; contact {p.phone}"
    ds.DeviceSerialNumber = f"{s.station_prefix}{ctx.station[-4:]}SN"
    ds.SoftwareVersions = s.software
    ds.StudyInstanceUID = ctx.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ctx.study_id
    ds.SeriesNumber = series_number
    ds.ImageComments = f"Reviewed by Dr. {ctx.referring.family} for {p.person.full}"
    block = ds.private_block(0x0009, s.private_creator, create=True)
    block.add_new(0x10, "LO", p.mrn)
    block.add_new(0x11, "LO", p.person.full)
    phi = [
        *p.person.phi("patient", "PatientName"),
        *p.person.phi("patient", "PatientComments", full=True),
        *p.person.phi("patient", "StudyDescription", full=True),
        *p.person.phi("patient", "ImageComments", full=True),
        *p.person.phi("patient", "(0009,1011)", full=True),
        (p.mrn, "mrn", "PatientID"),
        (p.mrn, "mrn", "(0009,1010)"),
        (p.ssn, "other_patient_id", "OtherPatientIDsSequence"),
        (ds.PatientBirthDate, "birth_date", "PatientBirthDate"),
        (p.address_dicom, "address", "PatientAddress"),
        (p.street, "street", "PatientAddress"),
        (p.phone, "phone", "PatientTelephoneNumbers"),
        (ctx.accession, "accession_number", "AccessionNumber"),
        *ctx.referring.phi("physician", "ReferringPhysicianName"),
        *ctx.performing.phi("physician", "PerformingPhysicianName"),
        *ctx.operator.phi("operator", "OperatorsName"),
        (s.institution, "institution_name", "InstitutionName"),
        (s.institution_address, "institution_address", "InstitutionAddress"),
        (ctx.station, "station_name", "StationName"),
        (ctx.date, "study_date", "StudyDate"),
        (ctx.time, "study_time", "StudyTime"),
        (ctx.study_uid, "study_uid", "StudyInstanceUID"),
        (series_uid, "series_uid", "SeriesInstanceUID"),
    ]
    return ds, phi


def file_meta(ds: Dataset, uids: UidFactory, style: SiteStyle) -> FileMetaDataset:
    """File meta with a fixed implementation class and version (no library version leaks in)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(uids.implementation_class_uid)
    meta.ImplementationVersionName = f"SYNTH_{style.name.upper()}_1"
    return meta


def write_dataset(ds: Dataset, path: Path, uids: UidFactory, style: SiteStyle, preamble: bool) -> None:
    """Write ``ds`` as a DICOM file, with or without the 128-byte preamble and ``DICM`` prefix."""
    ds.file_meta = file_meta(ds, uids, style)
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.preamble = b"\x00" * 128
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False)


def series_folder(ctx: StudyContext, series_number: int, modality: str) -> Path:
    """Relative folder of a series, in the style's (messy) export layout."""
    p, s = ctx.patient, ctx.style
    if s.layout == "a":
        return Path("dicom", p.mrn, f"{ctx.date}_{ctx.accession}", f"{series_number:03d}_{modality}")
    if s.layout == "b":
        base = Path("dicom", f"EXPORT_{ctx.when.year}", f"{p.person.family}_{p.mrn}", ctx.accession)
        return base if modality in ("CR", "US", "OT") else base / f"S{series_number}"
    base = Path("dicom", f"{p.mrn}_{ctx.date}_{ctx.accession}")
    return base / "DICOM" if p.index % 2 else base


def instance_name(ctx: StudyContext, series_number: int, instance: int) -> str:
    """File name of one instance; it contains the MRN, as real exports do."""
    mrn, s = ctx.patient.mrn, ctx.style
    if s.layout == "a":
        return f"{mrn}_{series_number}_{instance:04d}{s.extension}"
    if s.layout == "b":
        return f"I{series_number:02d}{instance:04d}_{mrn}{s.extension}"
    return f"{mrn}_{series_number:03d}_{instance:05d}{s.extension}"


def path_phi(ctx: StudyContext, relative: Path) -> list[tuple[str, str, str]]:
    """PHI planted in a file's path (MRN always, the family name in layout b)."""
    out = [(ctx.patient.mrn, "mrn", "path")]
    if ctx.patient.person.family in str(relative):
        out.append((ctx.patient.person.family, "patient_family_name", "path"))
    return out


def register_file(
    phi_reg: PhiRegistry, ctx: StudyContext, relative: Path, items: list[tuple[str, str, str]]
) -> None:
    """Record the header PHI and path PHI of one written file."""
    phi_reg.add_many(items + path_phi(ctx, relative), relative.as_posix())
