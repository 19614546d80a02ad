"""Build ``safe_private_attributes.json``: the private attributes kept by the Retain Safe Private Option.

Two lists of (private creator, group, element in the block) go in:

* ``STANDARD``: PS3.15 Table E.3.10-1 "Safe Private Attributes" (as published for 2024b and as
  tracked in PixelMed ``ClinicalTrialsAttributes.isSafePrivateAttribute`` by the table's editor);
* ``VENDOR``: private attributes that carry geometry, timing and diffusion and that dcm2niix reads
  (``console/nii_dicom.cpp`` of rordenlab/dcm2niix, the ``#define k...`` tags), with the meaning
  given there; the TCIA Private Tag Knowledge Base lists the same elements as numeric.

The VR of each row is the one of pydicom's private dictionary (``pydicom/_private_dict.py``, built
from the GDCM and DCMTK private dictionaries). Only numeric VRs and CS are kept (PS3.15 E.3.10 lets a
site choose; free text may carry anything): other rows are listed under ``dropped`` with the reason.

Run: ``.venv/bin/python -m infra.deid_data.safe_private``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydicom._private_dict import private_dictionaries

OUT = Path(__file__).resolve().parents[2] / "site_node" / "deid" / "data" / "safe_private_attributes.json"
NUMERIC_VRS = ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "IS", "DS")
KEPT_VRS = (*NUMERIC_VRS, "CS")
E3101 = "PS3.15 Table E.3.10-1"
DCM2NIIX = "dcm2niix console/nii_dicom.cpp"

#: creator -> group -> elements (low byte, hex) of Table E.3.10-1.
STANDARD: dict[str, dict[str, list[str]]] = {
    "ELSCINT1": {"00e1": ["21", "50"], "01e1": ["26"], "01f1": ["01", "07", "26", "27"]},
    "GEMS_ACQU_01": {"0019": ["23", "24", "27", "9e"]},
    "GEMS_HELIOS_01": {"0045": ["01", "02"]},
    "GEMS_IDI_01": {"0073": ["20", "21", "30", "31", "32", "40", "50"]},
    "GEMS_PARM_01": {"0043": ["27", "6f"]},
    "GEMS_SENO_02": {
        "0045": "06 1b 20 27 29 2a 2b 49 58 59 60 61 62 63 64 71 72 90 a0 a1 a2 a4 a7 a8 ab ac ad".split()
    },
    "GEMS_SERS_01": {"0025": ["07"]},
    "HOLOGIC, Inc.": {
        "0019": (
            "06 07 08 16 25 26 27 28 29 30 31 32 33 34 35 37 40 41 42 43 44 45 46 50 51 52 53 60 61 62 70 71 "
            "80 85 87 89 8a 90 97 98"
        ).split()
    },
    "LORAD Selenia": {
        "0019": "06 07 08 16 26 27 28 29 30 31 32 33 34 35 37 40 41 50 51 52 53 60 70 71 80 90".split()
    },
    "Philips MR Imaging DD 001": {"2005": ["0d", "0e"]},
    "PHILIPS MR IMAGING DD 001": {"2005": ["0d", "0e"]},
    "Philips PET Private Group": {"7053": ["00", "09"]},
    "SIEMENS Ultrasound SC2000": {
        "0119": "00 01 02 03 04 05 06 07 08 09 10 11 12 13 21".split(),
        "0129": "00 02 03 04 05 06 07 08 09 10 11 12 20 21 22 29 30".split(),
        "0139": ["01"],
        "0149": ["01", "02", "03"],
        "7fd1": ["01", "09", "10", "11"],
    },
    "SIEMENS SYNGO ULTRA-SOUND TOYON DATA STREAMING": {"7fd1": ["01", "09", "10", "11"]},
}

#: (creator, group, element, name, kind) read by dcm2niix.
VENDOR: list[tuple[str, str, str, str, str]] = [
    ("SIEMENS MR HEADER", "0019", "08", "CSA Image Header Type", "geometry"),
    ("SIEMENS MR HEADER", "0019", "0a", "NumberOfImagesInMosaic", "geometry"),
    ("SIEMENS MR HEADER", "0019", "0b", "SliceMeasurementDuration", "timing"),
    ("SIEMENS MR HEADER", "0019", "0c", "B_value", "diffusion"),
    ("SIEMENS MR HEADER", "0019", "0d", "DiffusionDirectionality", "diffusion"),
    ("SIEMENS MR HEADER", "0019", "0e", "DiffusionGradientDirection", "diffusion"),
    ("SIEMENS MR HEADER", "0019", "14", "ImaRelTablePosition", "geometry"),
    ("SIEMENS MR HEADER", "0019", "18", "RealDwellTime", "timing"),
    ("SIEMENS MR HEADER", "0019", "27", "B_matrix", "diffusion"),
    ("SIEMENS MR HEADER", "0019", "28", "BandwidthPerPixelPhaseEncode", "timing"),
    ("SIEMENS MR HEADER", "0019", "29", "MosaicRefAcqTimes", "timing"),
    ("SIEMENS CSA HEADER", "0029", "08", "CSA Image Header Type", "geometry"),
    ("SIEMENS CSA HEADER", "0029", "18", "CSA Series Header Type", "geometry"),
    ("GEMS_ACQU_01", "0019", "17", "Series plane", "geometry"),
    ("GEMS_ACQU_01", "0019", "1b", "Last scan loc", "geometry"),
    ("GEMS_ACQU_01", "0019", "5a", "Acquisition Duration", "timing"),
    ("GEMS_ACQU_01", "0019", "7f", "Table delta", "geometry"),
    ("GEMS_ACQU_01", "0019", "a2", "Raw data run number", "timing"),
    ("GEMS_ACQU_01", "0019", "a9", "User data 2 (max echo number)", "timing"),
    ("GEMS_ACQU_01", "0019", "b2", "User data 11 (diffusion tensor file)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "b3", "User data 12 (diffusion gradient cycling)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "b6", "User data 15 (gradient derating)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "bb", "User data 20 (diffusion direction, phase)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "bc", "User data 21 (diffusion direction, frequency)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "bd", "User data 22 (diffusion direction, slice)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "df", "User data 23 (number of T2 images)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "e0", "User data 24 (number of diffusion directions)", "diffusion"),
    ("GEMS_ACQU_01", "0019", "e2", "Velocity Encode Scale", "timing"),
    ("GEMS_RELA_01", "0021", "4f", "Locations in acquisition", "geometry"),
    ("GEMS_RELA_01", "0021", "5a", "Diffusion direction", "diffusion"),
    ("GEMS_RELA_01", "0021", "5e", "RTIA_timer", "timing"),
    ("GEMS_SERS_01", "0025", "07", "Images in Series", "geometry"),
    ("GEMS_IMAG_01", "0027", "60", "Image dimension - X", "geometry"),
    ("GEMS_IMAG_01", "0027", "61", "Image dimension - Y", "geometry"),
    ("GEMS_IMAG_01", "0027", "62", "Number of Excitations", "timing"),
    ("GEMS_PARM_01", "0043", "02", "Gradient offset in X (shim)", "geometry"),
    ("GEMS_PARM_01", "0043", "03", "Gradient offset in Y (shim)", "geometry"),
    ("GEMS_PARM_01", "0043", "04", "Gradient offset in Z (shim)", "geometry"),
    ("GEMS_PARM_01", "0043", "2c", "Effective echo spacing", "timing"),
    ("GEMS_PARM_01", "0043", "2f", "Image Type (real, imaginary, phase, magnitude)", "geometry"),
    ("GEMS_PARM_01", "0043", "30", "Vas collapse flag", "geometry"),
    ("GEMS_PARM_01", "0043", "39", "Slop_int_6..9 (b-value)", "diffusion"),
    ("GEMS_PARM_01", "0043", "7c", "Delay after slice group (EPI group delay)", "timing"),
    ("GEMS_PARM_01", "0043", "83", "Asset R Factors", "timing"),
    ("GEMS_PARM_01", "0043", "a3", "ASL Contrast technique", "timing"),
    ("GEMS_PARM_01", "0043", "a5", "Duration of the label or control pulse", "timing"),
    ("Philips Imaging DD 001", "2001", "03", "Diffusion B-Factor", "diffusion"),
    ("Philips Imaging DD 001", "2001", "04", "Diffusion Direction", "diffusion"),
    ("Philips Imaging DD 001", "2001", "08", "Phase Number", "timing"),
    ("Philips Imaging DD 001", "2001", "0a", "Slice Number MR", "geometry"),
    ("Philips Imaging DD 001", "2001", "0b", "Slice Orientation", "geometry"),
    ("Philips Imaging DD 001", "2001", "10", "Cardiac Sync", "timing"),
    ("Philips Imaging DD 001", "2001", "13", "EPI Factor", "timing"),
    ("Philips Imaging DD 001", "2001", "18", "Number of Slices MR", "geometry"),
    ("Philips Imaging DD 001", "2001", "19", "Partial Matrix Scanned", "geometry"),
    ("Philips Imaging DD 001", "2001", "1b", "Prepulse Delay", "timing"),
    ("Philips Imaging DD 001", "2001", "1c", "Prepulse Type", "timing"),
    ("Philips Imaging DD 001", "2001", "1f", "Respiration Sync", "timing"),
    ("Philips Imaging DD 001", "2001", "22", "Water Fat Shift", "timing"),
    ("Philips Imaging DD 001", "2001", "81", "Number of Dynamic Scans", "timing"),
    ("Philips MR Imaging DD 001", "2005", "0d", "Scale Intercept", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "0e", "Scale Slope", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "30", "Repetition Time (array)", "timing"),
    ("Philips MR Imaging DD 001", "2005", "63", "MR fMRI Status Indication", "timing"),
    ("Philips MR Imaging DD 001", "2005", "71", "MR Stack Angulation AP", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "72", "MR Stack Angulation FH", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "73", "MR Stack Angulation RL", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "78", "MR Stack Offcentre AP", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "79", "MR Stack Offcentre FH", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "7a", "MR Stack Offcentre RL", "geometry"),
    ("Philips MR Imaging DD 001", "2005", "b0", "Diffusion Direction RL", "diffusion"),
    ("Philips MR Imaging DD 001", "2005", "b1", "Diffusion Direction AP", "diffusion"),
    ("Philips MR Imaging DD 001", "2005", "b2", "Diffusion Direction FH", "diffusion"),
    ("Image Private Header", "0065", "09", "Diffusion b-value (UIH)", "diffusion"),
    ("Image Private Header", "0065", "37", "Diffusion gradient direction (UIH)", "diffusion"),
    ("Image Private Header", "0065", "50", "Number of images in grid (UIH)", "geometry"),
    ("Image Private Header", "0065", "58", "Phase encoding direction positive (UIH)", "geometry"),
    ("Image Private Header", "0065", "51", "MR V frame sequence (UIH): per-image position", "sequence"),
]

#: (creator, group, element) -> (VR, VM) for rows missing from pydicom's dictionary: the VR that
#: dcm2niix's comment gives and the multiplicity seen in the dcm_qa_stc UIH files.
MISSING = {
    ("Image Private Header", "0065", "09"): ("FD", "1"),
    ("Image Private Header", "0065", "37"): ("FD", "3"),
    ("Image Private Header", "0065", "50"): ("DS", "1"),
    ("Image Private Header", "0065", "58"): ("IS", "1"),
    ("Image Private Header", "0065", "51"): ("SQ", "1"),
}

#: VMs where the dictionary says 1 but scanners write more values (dcm2niix reads them as arrays).
VM_OVERRIDE = {
    ("SIEMENS MR HEADER", "0019", "0e"): "3",
    ("SIEMENS MR HEADER", "0019", "14"): "3",
    ("SIEMENS MR HEADER", "0019", "27"): "6",
    ("SIEMENS MR HEADER", "0019", "29"): "1-n",
    ("GEMS_PARM_01", "0043", "39"): "4",
    ("GEMS_PARM_01", "0043", "83"): "1-n",
    ("Philips MR Imaging DD 001", "2005", "30"): "1-n",
}

#: Code words that vendors write in the kept CS attributes (slice orientation, diffusion direction,
#: synchronisation, prepulse, header types). A CS value is kept only when all its words are here, or
#: are numbers of up to 3 digits: a name typed into a CS element never is.
CS_TERMS = sorted(
    {
        *"A B C D F H I L M N O P R S X Y Z".split(),
        *"TRANSVERSAL AXIAL SAGITTAL CORONAL OBLIQUE DIRECTIONAL ISOTROPIC NONE NO YES ON OFF".split(),
        *"IMAGE NUM MR CT PET SERIES SPEC RAW TRIGGERED RETROSPECTIVE PROSPECTIVE GATING GATED".split(),
        *"PULSE PPU ECG VCG BREATH HOLD NAVIGATOR BELLOWS PRESSURE BELT INVERSION SATURATION T2".split(),
        *"PREP IR SR FULL PARTIAL HALF MAGNITUDE PHASE REAL IMAGINARY ASL CASL PCASL PASL LABEL".split(),
        *"CONTROL PERFUSION DIFFUSION PSEUDO CONTINUOUS PULSED VELOCITY FLOW ROW COL NORMAL".split(),
    }
)

#: Siemens CSA image header (OB): kept only after a parse that keeps these numeric fields.
CSA_FIELDS = (
    "NumberOfImagesInMosaic",
    "SliceNormalVector",
    "MosaicRefAcqTimes",
    "SliceMeasurementDuration",
    "B_value",
    "B_matrix",
    "DiffusionGradientDirection",
    "BandwidthPerPixelPhaseEncode",
    "ImaRelTablePosition",
    "ProtocolSliceNumber",
    "PhaseEncodingDirectionPositive",
    "RealDwellTime",
    "EchoLinePosition",
    "EchoColumnPosition",
    "EchoPartitionPosition",
    "SliceResolution",
    "AcquisitionMatrixText",
    "ICE_Dims",
    "TimeAfterStart",
)


def _entry(creator: str, group: str, element: str) -> tuple[str, str, str] | None:
    if (creator, group, element) in MISSING:
        vr, vm = MISSING[(creator, group, element)]
        return vr, vm, ""
    for name in (creator, creator.upper()):
        entry = private_dictionaries.get(name, {}).get(f"{group.upper()}xx{element.upper()}")
        if entry:
            return entry[0], entry[1], entry[2]
    return None


def _vm_of(creator: str, group: str, element: str) -> str:
    entry = _entry(creator, group, element)
    return entry[1] if entry else "1-n"


def _vr(creator: str, group: str, element: str) -> str | None:
    entry = _entry(creator, group, element)
    return entry[0] if entry else None


def build() -> dict[str, object]:
    """The data file's content."""
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    dropped: list[dict[str, str]] = []
    candidates = [
        (c, g, e, "", "standard", E3101) for c, gs in STANDARD.items() for g, es in gs.items() for e in es
    ]
    candidates += [(c, g, e, name, kind, DCM2NIIX) for c, g, e, name, kind in VENDOR]
    for creator, group, element, name, kind, source in candidates:
        key = (creator, group.lower(), element.lower())
        vr = _vr(creator, group, element)
        if key in rows:
            rows[key]["source"] += f"; {source}"
            continue
        entry = {
            "creator": creator,
            "group": group.lower(),
            "element": element.lower(),
            "vr": vr or "",
            "vm": VM_OVERRIDE.get((creator, group, element)) or _vm_of(creator, group, element),
            "name": name or (_name(creator, group, element) or ""),
            "kind": kind,
            "source": source,
        }
        if vr not in KEPT_VRS and kind != "sequence":
            entry["reason"] = "VR not numeric or CS" if vr else "VR unknown"
            dropped.append(entry)
            continue
        rows[key] = entry
    rows[("SIEMENS CSA HEADER", "0029", "10")] = {
        "creator": "SIEMENS CSA HEADER",
        "group": "0029",
        "element": "10",
        "vr": "OB",
        "vm": "1",
        "name": "CSA Image Header Info (parsed: only csa_fields, numeric items)",
        "kind": "csa",
        "source": DCM2NIIX + " readCSAImageHeader",
    }
    return {
        "description": (
            "Private attributes kept by the Retain Safe Private Option (PS3.15 E.3.10, CID 7050 113111): "
            "matched by private creator, odd group and element within the creator's block; the value must "
            "fit the VR (numbers, or CS code strings of A-Z 0-9 space and underscore). kind=csa: the "
            "Siemens CSA image header, rewritten with only csa_fields whose items are all numbers. "
            "kind=sequence: a private sequence of standard attributes, kept with its items "
            "de-identified by the same profile (any text in them is handled as at the top level)."
        ),
        "source": (
            f"{E3101} (DICOM 2024b; PixelMed ClinicalTrialsAttributes.isSafePrivateAttribute); "
            f"{DCM2NIIX} (rordenlab/dcm2niix, tags it reads); VRs from pydicom 3.0 _private_dict.py; "
            "built by infra/deid_data/safe_private.py"
        ),
        "licence": "Apache-2.0 (project); facts from the DICOM standard, dcm2niix (BSD) and pydicom (MIT)",
        "kept_vrs": list(KEPT_VRS),
        "cs_terms": CS_TERMS,
        "csa_fields": list(CSA_FIELDS),
        "attributes": sorted(rows.values(), key=lambda r: (r["group"], r["creator"], r["element"])),
        "dropped": dropped,
    }


def _name(creator: str, group: str, element: str) -> str | None:
    for name in (creator, creator.upper()):
        entry = private_dictionaries.get(name, {}).get(f"{group.upper()}xx{element.upper()}")
        if entry:
            return entry[2]
    return None


def main() -> None:
    """Write the data file."""
    OUT.write_text(json.dumps(build(), indent=1) + "\n")


if __name__ == "__main__":
    main()
