"""Site styles: what makes one synthetic hospital differ from another.

Three styles (``a``, ``b``, ``c``) vary scanner, image statistics, lesion size and contrast,
disease prevalence, age mix, identifier formats and export layout, so that a federation built
from them is deliberately non-IID.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import InputError


@dataclass(frozen=True)
class SiteStyle:
    """Everything that is specific to one synthetic hospital.

    Attributes:
        name: style letter.
        uid_root: the hospital's own DICOM UID root.
        mrn_system: FHIR identifier system of the MRN.
        institution: institution name written to DICOM and FHIR.
        institution_address: institution address.
        city, state, area_code: where patients live.
        manufacturer, model, software, station_prefix: scanner identity.
        private_creator: vendor private creator string of the block holding the MRN.
        pixel_spacing_mm: in-plane spacing (row, column).
        slice_thickness_mm: CT slice thickness (= slice spacing).
        noise_sd_hu: Gaussian noise standard deviation in HU.
        tissue_hu: soft tissue mean HU (brightness offset between scanners).
        lesion_hu: lesion mean HU (lesions sit in the lungs at about -820 HU).
        lesion_radius_mm: (min, max) ellipsoid semi-axis in mm.
        prevalence: SNOMED code -> probability of the condition.
        age_mean, age_sd: age distribution (years) at the first study.
        female_fraction: probability of sex F.
        mrn_format: python format for the MRN from an integer.
        mrn_digits: number of digits drawn for the MRN.
        kernel: CT reconstruction kernel (ConvolutionKernel, also in the series description).
        accession_prefix: accession number prefix.
        layout: export folder layout name.
        extension: file extension of DICOM files.
        no_preamble_fraction: share of files written without the 128-byte preamble.
        signed_pixels: CT stored as int16 (True) or uint16 (False).
        extra_modality_fraction: probability of MR, CR and US/SC studies per patient.
    """

    name: str
    uid_root: str
    mrn_system: str
    institution: str
    institution_address: str
    city: str
    state: str
    zip_prefix: str
    area_code: str
    manufacturer: str
    model: str
    software: str
    station_prefix: str
    private_creator: str
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float
    noise_sd_hu: float
    tissue_hu: float
    lesion_hu: float
    lesion_radius_mm: tuple[float, float]
    prevalence: dict[str, float] = field(default_factory=dict)
    age_mean: float = 62.0
    age_sd: float = 12.0
    female_fraction: float = 0.5
    kernel: str = "STANDARD"
    mrn_format: str = "{:08d}"
    mrn_digits: int = 8
    accession_prefix: str = "ACC"
    layout: str = "a"
    extension: str = ".dcm"
    no_preamble_fraction: float = 0.0
    signed_pixels: bool = True
    extra_modality_fraction: float = 0.3


NSCLC = "254637007"
DIABETES = "44054006"
HYPERTENSION = "38341003"
PNEUMONIA = "233604007"
AFIB = "49436004"

STYLES: dict[str, SiteStyle] = {
    "a": SiteStyle(
        name="a",
        uid_root="1.2.826.0.1.3680043.10.101",
        mrn_system="urn:oid:1.2.826.0.1.3680043.10.101.7.1",
        institution="St. Aldhelm University Hospital",
        institution_address="1200 Cathedral Road, Springfield, IL 62704",
        city="Springfield",
        state="IL",
        zip_prefix="627",
        area_code="217",
        manufacturer="SIEMENS",
        model="SOMATOM Definition AS+",
        software="syngo CT VA48A",
        station_prefix="CTAWP",
        private_creator="SIEMENS MED HOSPITAL PACS",
        pixel_spacing_mm=(0.78, 0.78),
        slice_thickness_mm=2.5,
        noise_sd_hu=12.0,
        tissue_hu=40.0,
        lesion_hu=30.0,
        lesion_radius_mm=(5.0, 9.0),
        prevalence={NSCLC: 0.6, DIABETES: 0.2, HYPERTENSION: 0.45, PNEUMONIA: 0.15, AFIB: 0.1},
        age_mean=66.0,
        age_sd=9.0,
        female_fraction=0.42,
        kernel="B30f",
        mrn_format="{:08d}",
        accession_prefix="SA",
        layout="a",
        extension=".dcm",
        no_preamble_fraction=0.0,
        signed_pixels=True,
        extra_modality_fraction=0.35,
    ),
    "b": SiteStyle(
        name="b",
        uid_root="1.2.826.0.1.3680043.10.202",
        mrn_system="http://hospital.northbridge-medical.example/fhir/mrn",
        institution="Northbridge Medical Centre",
        institution_address="44 Harbour Street, Portland, ME 04101",
        city="Portland",
        state="ME",
        zip_prefix="041",
        area_code="207",
        manufacturer="GE MEDICAL SYSTEMS",
        model="LightSpeed VCT",
        software="LightSpeedverrel",
        station_prefix="GECT",
        private_creator="GEMS_HOSP_IDENT_01",
        pixel_spacing_mm=(0.70, 0.70),
        slice_thickness_mm=3.0,
        noise_sd_hu=25.0,
        tissue_hu=55.0,
        lesion_hu=-80.0,
        lesion_radius_mm=(3.5, 6.5),
        prevalence={NSCLC: 0.3, DIABETES: 0.35, HYPERTENSION: 0.6, PNEUMONIA: 0.25, AFIB: 0.2},
        age_mean=72.0,
        age_sd=8.0,
        female_fraction=0.55,
        mrn_format="MR{:06d}",
        mrn_digits=6,
        accession_prefix="NB",
        layout="b",
        extension=".dcm",
        no_preamble_fraction=0.2,
        signed_pixels=False,
        extra_modality_fraction=0.3,
    ),
    "c": SiteStyle(
        name="c",
        uid_root="1.2.826.0.1.3680043.10.303",
        mrn_system="urn:oid:1.2.826.0.1.3680043.10.303.7.1",
        institution="Lakeshore Regional Hospital",
        institution_address="9 Lakeshore Drive, Madison, WI 53703",
        city="Madison",
        state="WI",
        zip_prefix="537",
        area_code="608",
        manufacturer="Philips",
        model="Brilliance 64",
        software="4.1.6",
        station_prefix="PHCT",
        private_creator="PHILIPS HOSPITAL MRN 001",
        pixel_spacing_mm=(0.90, 0.90),
        slice_thickness_mm=2.0,
        noise_sd_hu=8.0,
        tissue_hu=30.0,
        lesion_hu=90.0,
        lesion_radius_mm=(6.0, 11.0),
        prevalence={NSCLC: 0.45, DIABETES: 0.15, HYPERTENSION: 0.3, PNEUMONIA: 0.1, AFIB: 0.05},
        age_mean=55.0,
        age_sd=13.0,
        female_fraction=0.5,
        kernel="B",
        mrn_format="{:07d}",
        mrn_digits=7,
        accession_prefix="LRH",
        layout="c",
        extension=".DCM",
        no_preamble_fraction=0.1,
        signed_pixels=True,
        extra_modality_fraction=0.25,
    ),
}


def get_style(name: str) -> SiteStyle:
    """Return the style called ``name``.

    Raises:
        InputError: unknown style.
    """
    try:
        return STYLES[name]
    except KeyError:
        raise InputError("unknown site style (expected a, b or c)", field="site_style") from None
