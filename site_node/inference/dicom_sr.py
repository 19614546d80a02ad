"""The TID 1500 Measurement Report SR: lesion volume per segment, referencing the SEG and the images."""

from __future__ import annotations

from typing import Any

import highdicom as hd
import pydicom
from pydicom.sr.codedict import codes

from common import __version__
from site_node.inference.dicom_seg import MANUFACTURER, SR_SERIES_NUMBER, Lesion
from site_node.inference.study import ImageStudy

#: SNOMED CT 77477000 "Computed tomography": the procedure the report is about.
PROCEDURE = codes.SCT.ComputedTomography


def _observer(name: str, version: int, site_id: str) -> hd.sr.ObserverContext:
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(),
            name=f"{name} v{version}"[:64],
            manufacturer_name=MANUFACTURER,
            model_name=name[:64],
            serial_number=site_id,
        ),
    )


def _segment_reference(seg: pydicom.Dataset, study: ImageStudy, lesion: Lesion) -> hd.sr.ReferencedSegment:
    """The segment and the source images it lies on (its series when the segment is empty)."""
    common = {
        "sop_class_uid": seg.SOPClassUID,
        "sop_instance_uid": seg.SOPInstanceUID,
        "segment_number": lesion.number,
    }
    if not lesion.slices:
        series = str(study.datasets[0].SeriesInstanceUID)
        return hd.sr.ReferencedSegment(**common, source_series=hd.sr.SourceSeriesForSegmentation(series))
    sources = [
        hd.sr.SourceImageForSegmentation(
            referenced_sop_class_uid=study.datasets[k].SOPClassUID,
            referenced_sop_instance_uid=study.datasets[k].SOPInstanceUID,
        )
        for k in lesion.slices
    ]
    return hd.sr.ReferencedSegment(**common, source_images=sources)


def _group(seg: pydicom.Dataset, study: ImageStudy, lesion: Lesion, name: str, version: int) -> Any:
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"lesion-{lesion.number}"),
        referenced_segment=_segment_reference(seg, study, lesion),
        finding_type=codes.SCT.Lesion,
        algorithm_id=hd.sr.AlgorithmIdentification(name=name, version=str(version)),
        measurements=[
            hd.sr.Measurement(
                name=codes.SCT.Volume,
                value=lesion.volume_ml,
                unit=hd.sr.CodedConcept("mL", "UCUM", "milliliter"),
                algorithm_id=hd.sr.AlgorithmIdentification(name=name, version=str(version)),
            )
        ],
    )


def build_sr(
    study: ImageStudy, seg: pydicom.Dataset, lesions: list[Lesion], name: str, version: int, site_id: str
) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR holding a TID 1500 report with one volumetric group per lesion.

    With no lesion found, the SEG's one empty segment is reported with a volume of 0 mL.
    """
    observation = hd.sr.ObservationContext(observer_device_context=_observer(name, version, site_id))
    groups = [_group(seg, study, lesion, name, version) for lesion in lesions or [Lesion(1, 0, 0.0)]]
    report = hd.sr.MeasurementReport(
        observation_context=observation,
        procedure_reported=PROCEDURE,
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *study.datasets],
        content=report,
        series_number=SR_SERIES_NUMBER,
        series_instance_uid=hd.UID(),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=f"AI measurements {name} v{version}"[:64],
        institution_name=None,
        software_versions=__version__,
    )
