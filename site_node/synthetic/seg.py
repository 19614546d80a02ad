"""The lesion mask as a DICOM Segmentation (highdicom) referencing its CT series."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes

from site_node.synthetic.dicom_common import (
    StudyContext,
    instance_name,
    register_file,
    series_folder,
    write_dataset,
)
from site_node.synthetic.imaging import Writer

SEG_SERIES_NUMBER_OFFSET = 100


def _description() -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        anatomic_regions=[codes.SCT.Lung],
    )


def write_seg(
    w: Writer,
    ctx: StudyContext,
    sources: list[Dataset],
    mask: np.ndarray,
    ct_series_number: int,
    ct_series_uid: str,
    source_phi: list[tuple[str, str, str]],
) -> dict:
    """Write the binary lesion SEG of one CT series and return its truth record.

    Args:
        w: writer context.
        ctx: the study.
        sources: the CT slice headers in slice order (pixel data not needed).
        mask: uint8 mask (slices, rows, columns), 1 = lesion.
        ct_series_number: series number of the CT (the SEG gets +100).
        ct_series_uid: SeriesInstanceUID of the referenced CT.
        source_phi: the PHI planted in the CT headers; highdicom copies part of it into the SEG.
    """
    series_number = ct_series_number + SEG_SERIES_NUMBER_OFFSET
    series_uid = w.uids.new("series")
    sop_uid = w.uids.new("instance")
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description()],
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=ctx.style.manufacturer,
        manufacturer_model_name="SynthSeg",
        software_versions="1",
        device_serial_number="SYNTHSEG1",
        content_description="Lesion mask",
        content_creator_name=ctx.referring.dicom,
        content_label="LESION",
        series_description=f"Lesion SEG for {ctx.patient.person.full}",
        content_date=ctx.date,
        content_time=ctx.time,
        omit_empty_frames=False,
    )
    _stabilize(seg, ctx, w)
    relative = series_folder(ctx, series_number, "SEG") / instance_name(ctx, series_number, 1)
    write_dataset(seg, w.out / relative, w.uids, ctx.style, preamble=True)
    written = (w.out / relative).read_bytes()
    # record exactly what ended up in the SEG: highdicom copies patient, study and equipment data
    phi = [item for item in source_phi + _seg_phi(seg, ctx) if item[0].encode() in written]
    register_file(w.phi, ctx, relative, phi)
    return {
        "series_instance_uid": series_uid,
        "sop_instance_uid": sop_uid,
        "series_number": series_number,
        "modality": "SEG",
        "series_description": seg.SeriesDescription,
        "instance_count": 1,
        "file": relative.as_posix(),
        "files": [relative.as_posix()],
        "referenced_series_instance_uid": ct_series_uid,
        "segment_label": "Lesion",
        "segment_number": 1,
    }


def _stabilize(seg: Dataset, ctx: StudyContext, w: Writer) -> None:
    """Replace what highdicom fills from the clock or a random UID by seeded values."""
    seg.InstanceCreationDate = ctx.date
    seg.InstanceCreationTime = ctx.time
    seg.SeriesDate = ctx.date
    seg.SeriesTime = ctx.time
    for item in seg.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = f"{ctx.date}{ctx.time}"
    old = None
    if "DimensionOrganizationSequence" in seg:
        old = seg.DimensionOrganizationSequence[0].DimensionOrganizationUID
    if old is None:
        return
    new = w.uids.new("dimension")
    seg.DimensionOrganizationSequence[0].DimensionOrganizationUID = new
    for item in seg.get("DimensionIndexSequence", []):
        if item.get("DimensionOrganizationUID") == old:
            item.DimensionOrganizationUID = new


def _seg_phi(seg: Dataset, ctx: StudyContext) -> list[tuple[str, str, str]]:
    p = ctx.patient
    return [
        *p.person.phi("patient", "PatientName"),
        *p.person.phi("patient", "SeriesDescription", full=True),
        (p.mrn, "mrn", "PatientID"),
        (seg.PatientBirthDate, "birth_date", "PatientBirthDate"),
        (ctx.accession, "accession_number", "AccessionNumber"),
        *ctx.referring.phi("physician", "ContentCreatorName"),
        (ctx.date, "study_date", "StudyDate"),
        (ctx.study_uid, "study_uid", "StudyInstanceUID"),
        (seg.SeriesInstanceUID, "series_uid", "SeriesInstanceUID"),
    ]
