"""Real scanner files for the de-identification benchmark: planted PHI, research checks.

The public corpus gathered by ``real_corpus.py`` (Siemens mosaics, GE/Philips/UIH DWI and fMRI,
enhanced MR, highdicom and pydicom files) is copied with identifiers planted where real exports carry
them: patient and physician names, IDs, accession, institution, birth date, free text naming the
patient, a private creator of our own, and -- the hard cases for Retain Safe Private -- a name typed
into an element that the safe private list keeps (a GE shim value slot) and into an unlisted element of
a listed creator (Siemens). Files of burned-in-risk classes go to a separate folder so the dcm2niix
parity counts only series outside those classes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

ENHANCED_MR = {"1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.3", "1.2.840.10008.5.1.4.1.1.4.4"}
FAMILY = ["Vandermolen", "Quintanilla", "Rasmussenova", "Achterberg", "Silvestrini", "Okereke"]
GIVEN = ["Philippa", "Casimir", "Wilhelmina", "Evander", "Rosalind", "Thaddeus"]


def _plant(ds: Dataset, series: int, needles: set[str]) -> None:
    family, given = f"{FAMILY[series % len(FAMILY)]}r{series}", GIVEN[series % len(GIVEN)]
    values = {
        "PatientID": f"RMRN{series:06d}",
        "PatientName": f"{family}^{given}",
        "AccessionNumber": f"RACC{series:06d}",
        "InstitutionName": "Saint Realfile Hospital",
        "ReferringPhysicianName": "Drummondhollis^Agathe",
        "PatientBirthDate": f"19{30 + series % 60:02d}0217",
        "StudyDescription": f"MR BRAIN research scan of {given} {family}",
    }
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.add_new(0x00990010, "LO", "REAL PLANTED")
    ds.add_new(0x00991001, "LO", f"{given} {family} RMRN{series:06d}")
    if str(ds.get((0x0043, 0x0010), "")).strip() == "GEMS_PARM_01" and 0x00431002 not in ds:
        ds.add_new(0x00431002, "LT", f"note {given} {family}")  # a kept slot (SS shim) with text in it
    if str(ds.get((0x0019, 0x0010), "")).strip() == "SIEMENS MR HEADER" and 0x0019100F not in ds:
        ds.add_new(0x0019100F, "SH", f"{family[:12]}")  # listed creator, unlisted element
    needles.update(str(v) for k, v in values.items() if k not in ("StudyDescription",))
    needles.update([family, given, "Drummondhollis", "Realfile"])
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        uid = str(ds.get(keyword, "")).strip()
        if len(uid) > 20:
            needles.add(uid)


def plant_real(src: Path, out: Path) -> tuple[set[str], int]:
    """Planted copies of the DICOM files under ``src``: ``out/ok`` and ``out/risky`` (burned-in classes).

    Returns:
        (planted values, files written).
    """
    from site_node.deid.risk import burned_in_risk

    needles: set[str] = set()
    series_ids: dict[str, int] = {}
    count = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
            ds.SOPInstanceUID  # noqa: B018 - a DICOM image, not a DICOMDIR or a sidecar
        except Exception:  # noqa: S112 - not DICOM: skipped
            continue
        key = str(ds.get("SeriesInstanceUID", path.parent))
        series = series_ids.setdefault(key, len(series_ids))
        planted: set[str] = set()
        _plant(ds, series, planted)
        folder = "risky" if burned_in_risk(ds, []) else "ok"
        target = out / folder / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds.save_as(target)
        except Exception:  # noqa: S112 - a file pydicom cannot write back: left out of the corpus
            target.unlink(missing_ok=True)
            continue
        needles |= planted
        count += 1
    return needles, count


def timing_kept(folder: Path) -> tuple[int, int]:
    """Enhanced MR files under ``folder``: (with RepetitionTime and FlipAngle in their MR timing
    functional group, all)."""
    kept = total = 0
    for path in (p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: S112
            continue
        if str(ds.get("SOPClassUID", "")) not in ENHANCED_MR:
            continue
        total += 1
        kept += _has_timing(ds)
    return kept, total


def _has_timing(ds: Dataset) -> bool:
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in ds.get(keyword, []) or []:
            for item in group.get("MRTimingAndRelatedParametersSequence", []) or []:
                if "RepetitionTime" in item and "FlipAngle" in item:
                    return True
    return False


def reset(folder: Path) -> None:
    """An empty ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
