"""MI-CDM imaging tables from the de-identified DICOM export (``<home>/export/dicom``).

IMAGE_OCCURRENCE: one row per de-identified series, read from the headers (never the folder
names), linked to its person (PatientID is the patient pseudonym) and to the imaging
PROCEDURE_OCCURRENCE of its study: the row made from the FHIR ImagingStudy (same key, derived from
the de-identified StudyInstanceUID) or, when there is none, an imaging procedure created here.
IMAGE_FEATURE: for each DICOM-SEG segment, its volume (voxel count x voxel volume, mm3) stored as a
MEASUREMENT row that the feature points to (MI-CDM convention), linked to the segmented series.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from common.crypto import sha256_hex
from site_node.clinical.fhir.base import EHR, Mapped, source_key
from site_node.clinical.fhir.codes import source_code
from site_node.clinical.fhir.imaging_study import IMAGING_PROCEDURE_CONCEPT, imaging_procedure_id
from site_node.clinical.fhir.writer import OmopWriter, Person
from site_node.clinical.omop.schema import cdm_table
from site_node.clinical.vocabulary import BODY_PART_VOCABULARY, MODALITY_VOCABULARY, ConceptMapper
from site_node.home import SiteContext

log = logging.getLogger(__name__)
LESION_VOLUME = 2000002001
SEG_FEATURE_TYPE = 2000002101
MEASUREMENT_ID_FIELD = 2000002201
MM3 = 2000004001
_HEADER_TAGS = [
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "BodyPartExamined",
    "SeriesDate",
    "StudyDate",
    "AcquisitionDate",
]


@dataclass
class SeriesInfo:
    """Header facts of one de-identified series."""

    patient: str
    study_uid: str
    series_uid: str
    modality: str
    body_part: str
    date: dt.date | None
    folder: str
    files: list[Path] = field(default_factory=list)


@dataclass
class ImagingSummary:
    """Counts of one sync."""

    series: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "series": self.series,
            "rows": dict(self.rows),
            "unchanged": self.unchanged,
            "skipped": dict(self.skipped),
        }


def _date(value: Any) -> dt.date | None:
    text = str(value or "").strip()
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def scan_export(root: Path) -> dict[str, SeriesInfo]:
    """Series UID -> header facts of every readable DICOM file under ``root``."""
    series: dict[str, SeriesInfo] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid or not ds.get("PatientID"):
            continue
        info = series.get(uid)
        if info is None:
            info = series[uid] = SeriesInfo(
                patient=str(ds.PatientID),
                study_uid=str(ds.get("StudyInstanceUID", "")),
                series_uid=uid,
                modality=str(ds.get("Modality", "") or "OT"),
                body_part=str(ds.get("BodyPartExamined", "") or ""),
                date=_date(ds.get("SeriesDate"))
                or _date(ds.get("StudyDate"))
                or _date(ds.get("AcquisitionDate")),
                folder=str(path.parent.relative_to(root)),
            )
        info.files.append(path)
    return series


def segment_volumes(path: Path) -> dict[int, float]:
    """Segment number -> volume in mm3 of a DICOM-SEG (non-zero voxels x voxel volume)."""
    ds = pydicom.dcmread(path, force=True)
    frames = np.asarray(ds.pixel_array)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    shared = ds.SharedFunctionalGroupsSequence[0]
    measures = shared.PixelMeasuresSequence[0]
    spacing = [float(v) for v in measures.PixelSpacing]
    depth = float(getattr(measures, "SpacingBetweenSlices", None) or measures.SliceThickness)
    voxel = spacing[0] * spacing[1] * depth
    volumes: dict[int, float] = {}
    for index, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ident = group.get("SegmentIdentificationSequence") or shared.get("SegmentIdentificationSequence")
        number = int(ident[0].ReferencedSegmentNumber)
        volumes[number] = volumes.get(number, 0.0) + float(np.count_nonzero(frames[index])) * voxel
    return volumes


def _referenced_series(path: Path) -> str | None:
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    for item in ds.get("ReferencedSeriesSequence", []) or []:
        if item.get("SeriesInstanceUID"):
            return str(item.SeriesInstanceUID)
    return None


def sync_images(site: SiteContext) -> ImagingSummary:
    """Bring IMAGE_OCCURRENCE / IMAGE_FEATURE (and imaging procedures) in line with the export."""
    root = site.settings.export_dir / "dicom"
    summary = ImagingSummary()
    if not root.is_dir():
        return summary
    pz = site.pseudonymizer()
    writer = OmopWriter(site.engine, pz, "dicom")
    concepts = ConceptMapper(site.engine)
    person, procedure = cdm_table("person"), cdm_table("procedure_occurrence")
    with site.engine.connect() as conn:
        persons = {
            source: pid
            for pid, source in conn.execute(select(person.c.person_id, person.c.person_source_value))
        }
        procedures = {
            pid: visit
            for pid, visit in conn.execute(
                select(procedure.c.procedure_occurrence_id, procedure.c.visit_occurrence_id)
            )
        }
    series = scan_export(root)
    summary.series = len(series)
    mapped: list[Mapped] = []
    studies_done: set[str] = set()
    occurrence_ids = {uid: pz.integer_id("omop_row", f"image_occurrence:series:{uid}:0") for uid in series}
    for info in sorted(series.values(), key=lambda s: (s.modality == "SEG", s.series_uid)):
        person_id = persons.get(info.patient)
        if person_id is None or info.date is None:
            summary.skipped["no_person" if person_id is None else "no_date"] += 1
            continue
        item = _series_record(mapped, pz, info, person_id, concepts, procedures, studies_done, occurrence_ids)
        writer.patients[item.patient_key or ""] = Person(person_id, 0, info.patient)
        mapped.append(item)
    outcome = writer.write(mapped)
    summary.rows.update(outcome.rows)
    summary.unchanged = outcome.unchanged
    writer.finish()
    return summary


def _study_record(pz: Any, info: SeriesInfo, procedure_id: int, when: dt.datetime | None) -> Mapped:
    """The imaging procedure of a study that has no ImagingStudy-made one.

    Its own source record, whose content never changes, so replacing a series never removes it (a
    later FHIR ImagingStudy replaces the row in place).
    """
    item = Mapped(
        "ImagingProcedure",
        source_key(pz, f"study:{info.study_uid}"),
        sha256_hex(info.study_uid.encode()),
        patient_key=f"pseudonym:{info.patient}",
        dates_shifted=True,
    )
    item.rows.append(
        (
            "procedure_occurrence",
            {
                "procedure_occurrence_id": procedure_id,
                "procedure_concept_id": IMAGING_PROCEDURE_CONCEPT,
                "procedure_date": info.date,
                "procedure_datetime": when,
                "procedure_type_concept_id": EHR,
                "procedure_source_value": source_code(MODALITY_VOCABULARY, info.modality.upper()),
            },
        )
    )
    return item


def _series_record(
    mapped: list[Mapped],
    pz: Any,
    info: SeriesInfo,
    person_id: int,
    concepts: ConceptMapper,
    procedures: dict[int, int | None],
    studies_done: set[str],
    occurrence_ids: dict[str, int],
) -> Mapped:
    procedure_id = imaging_procedure_id(pz, info.study_uid)
    facts = f"{info.patient}|{info.study_uid}|{info.modality}|{info.body_part}|{info.date}|{len(info.files)}"
    item = Mapped(
        "ImageSeries",
        source_key(pz, f"series:{info.series_uid}"),
        sha256_hex(facts.encode()),
        patient_key=f"pseudonym:{info.patient}",
        dates_shifted=True,
    )
    when = dt.datetime(info.date.year, info.date.month, info.date.day) if info.date else None
    if procedure_id not in procedures and info.study_uid not in studies_done:
        mapped.append(_study_record(pz, info, procedure_id, when))
    studies_done.add(info.study_uid)
    occurrence_id = occurrence_ids[info.series_uid]
    item.rows.append(
        (
            "image_occurrence",
            {
                "image_occurrence_id": occurrence_id,
                "procedure_occurrence_id": procedure_id,
                "visit_occurrence_id": procedures.get(procedure_id),
                "anatomic_site_concept_id": concepts.lookup(
                    BODY_PART_VOCABULARY, info.body_part.upper()
                ).concept_id
                if info.body_part
                else None,
                "local_path": info.folder,
                "image_occurrence_date": info.date,
                "image_study_uid": info.study_uid,
                "image_series_uid": info.series_uid,
                "modality_concept_id": concepts.lookup(MODALITY_VOCABULARY, info.modality.upper()).concept_id,
            },
        )
    )
    if info.modality.upper() == "SEG":
        _seg_features(pz, info, item, occurrence_ids, when)
    return item


def _seg_features(
    pz: Any, info: SeriesInfo, item: Mapped, occurrence_ids: dict[str, int], when: dt.datetime | None
) -> None:
    for path in info.files:
        try:
            volumes = segment_volumes(path)
            source = _referenced_series(path)
        except (AttributeError, IndexError, KeyError, ValueError, TypeError):
            log.warning("a SEG instance could not be measured; skipped")
            continue
        target = occurrence_ids.get(source or "", occurrence_ids[info.series_uid])
        sop = sha256_hex(str(path.name).encode())[:12]
        for number, volume in sorted(volumes.items()):
            ref = f"seg:{info.series_uid}:{sop}:{number}"
            measurement_id = pz.integer_id("omop_row", f"measurement:{ref}:0")
            item.rows.append(
                (
                    "measurement",
                    {
                        "measurement_id": measurement_id,
                        "measurement_concept_id": LESION_VOLUME,
                        "measurement_date": info.date,
                        "measurement_datetime": when,
                        "measurement_type_concept_id": SEG_FEATURE_TYPE,
                        "value_as_number": round(volume, 3),
                        "unit_concept_id": MM3,
                        "unit_source_value": "mm3",
                        "measurement_source_value": f"segment {number} volume",
                    },
                )
            )
            item.rows.append(
                (
                    "image_feature",
                    {
                        "image_feature_id": pz.integer_id("omop_row", f"image_feature:{ref}:0"),
                        "image_occurrence_id": target,
                        "image_feature_event_field_concept_id": MEASUREMENT_ID_FIELD,
                        "image_feature_event_id": measurement_id,
                        "image_feature_concept_id": LESION_VOLUME,
                        "image_feature_type_concept_id": SEG_FEATURE_TYPE,
                        "alg_system": "DICOM-SEG voxel count",
                    },
                )
            )
