"""Imaging studies of one patient: DICOM series, SEG, lesion truth and the FHIR resources about them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from site_node.synthetic.context import SiteContext
from site_node.synthetic.dicom_common import StudyContext
from site_node.synthetic.fhir import IMAGING_PROCEDURES
from site_node.synthetic.imaging import (
    ct_stored,
    make_mr_volume,
    volume_origin,
    write_capture,
    write_cr,
    write_volume_series,
)
from site_node.synthetic.people import Patient
from site_node.synthetic.seg import write_seg
from site_node.synthetic.volumes import SHAPE, Lesion, make_ct_volume


def _context(site: SiteContext, patient: Patient, when: dt.datetime, description: str) -> StudyContext:
    rng, uids = site.rng, site.writer.uids
    pick = [site.physicians[i] for i in rng.choice(len(site.physicians), size=3, replace=False)]
    accession = _accession(site, when)
    return StudyContext(
        patient=patient,
        style=site.style,
        study_uid=uids.new("study"),
        accession=accession,
        when=when,
        description=description,
        study_id=str(int(rng.integers(1000, 99999))),
        referring=pick[0],
        performing=pick[1],
        operator=pick[2],
        frame_of_reference_uid=uids.new("frame"),
        station=site.stations[int(rng.integers(len(site.stations)))],
    )


def _accession(site: SiteContext, when: dt.datetime) -> str:
    """A new accession number, unique within the site (folder names rely on it)."""
    while True:
        number = int(site.rng.integers(100000, 999999))
        accession = f"{site.style.accession_prefix}{when.year % 100:02d}{number}"
        if accession not in site.accessions:
            site.accessions.add(accession)
            return accession


def ct_study(
    site: SiteContext, patient: Patient, pid: str, when: dt.datetime, follow_up: bool
) -> dict[str, Any]:
    """Write a CT series with 1-3 lesions and its SEG; add the FHIR resources; return the truth record."""
    kind = "follow-up" if follow_up else "staging"
    ctx = _context(site, patient, when, f"CT CHEST W CONTRAST {kind} for {patient.person.full}")
    volume = make_ct_volume(site.rng, site.style, int(site.rng.integers(1, 4)))
    stored, rescale = ct_stored(volume.hu, site.style.signed_pixels)
    spacing = (*site.style.pixel_spacing_mm, site.style.slice_thickness_mm)
    ct = write_volume_series(
        site.writer,
        ctx,
        "CT",
        stored,
        2,
        f"CHEST {spacing[2]:g}mm {site.style.kernel} AXIAL",
        spacing,
        rescale,
    )
    seg = write_seg(site.writer, ctx, ct.sources, volume.mask, 2, ct.record["series_instance_uid"], ct.phi)
    origin = volume_origin(SHAPE, spacing)
    lesions = [_lesion_record(lesion, origin, spacing) for lesion in volume.lesions]
    study = _study_record(ctx, "CT", [ct.record])
    study.update({"seg": seg, "lesions": lesions, "volume_shape": list(SHAPE), "spacing_mm": list(spacing)})
    site.summary.segmentations += 1
    site.summary.lesions += len(lesions)
    _study_fhir(site, ctx, pid, study, "CT")
    return study


def _lesion_record(
    lesion: Lesion, origin: tuple[float, float, float], spacing: tuple[float, float, float]
) -> dict[str, Any]:
    z, y, x = lesion.centre_voxel
    centre_mm = [
        round(origin[0] + x * spacing[1], 3),
        round(origin[1] + y * spacing[0], 3),
        round(origin[2] + z * spacing[2], 3),
    ]
    return {
        "centre_voxel_zyx": [z, y, x],
        "centre_mm_xyz": centre_mm,
        "radii_mm_xyz": list(lesion.radii_mm),
        "voxel_count": lesion.voxel_count,
        "volume_mm3": lesion.volume_mm3,
        "segment_number": 1,
    }


def other_study(
    site: SiteContext, patient: Patient, pid: str, when: dt.datetime, modality: str
) -> dict[str, Any]:
    """Write an MR, CR or US/OT study; add the FHIR resources; return the truth record."""
    titles = {"MR": "MR CHEST WO CONTRAST", "CR": "XR CHEST 1 VIEW", "US": "US ABDOMEN LIMITED"}
    ctx = _context(site, patient, when, f"{titles[modality]} ordered for {patient.person.full}")
    if modality == "MR":
        spacing = (1.2, 1.2, 5.0)
        series = write_volume_series(
            site.writer, ctx, "MR", make_mr_volume(site.rng), 3, "T1 SE AXIAL", spacing, None
        )
    elif modality == "CR":
        series = write_cr(site.writer, ctx, 1)
    else:
        series = write_capture(site.writer, ctx, 1, "US" if site.rng.random() < 0.6 else "OT")
    study = _study_record(ctx, modality, [series.record])
    study.update({"seg": None, "lesions": []})
    _study_fhir(site, ctx, pid, study, modality)
    return study


def _study_record(ctx: StudyContext, modality: str, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "study_instance_uid": ctx.study_uid,
        "accession_number": ctx.accession,
        "study_date": ctx.when.date().isoformat(),
        "study_time": ctx.time,
        "modality": modality,
        "study_description": ctx.description,
        "referring_physician": ctx.referring.dicom,
        "frame_of_reference_uid": ctx.frame_of_reference_uid,
        "series": series,
    }


def _study_fhir(site: SiteContext, ctx: StudyContext, pid: str, study: dict[str, Any], modality: str) -> None:
    eid = site.fhir.encounter(pid, ctx.when, f"Imaging: {modality}", ctx.referring)
    code, display = IMAGING_PROCEDURES[study["series"][0]["modality"]]
    site.fhir.procedure(pid, eid, ctx.when, code, display, ctx.performing)
    site.fhir.imaging_study(pid, eid, study, ctx.when, ctx.referring)
    names = ctx.patient.person.phi("patient", "ImagingStudy.description", full=True)
    site.writer.phi.add_many(names, "fhir/ImagingStudy.ndjson")
    site.summary.studies += 1
    site.summary.series += len(study["series"]) + (1 if study.get("seg") else 0)
    site.summary.instances += sum(s["instance_count"] for s in study["series"]) + (
        1 if study.get("seg") else 0
    )
