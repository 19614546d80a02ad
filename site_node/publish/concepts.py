"""Turning OMOP concept IDs into the catalog's facet values.

Modality and body part of IMAGE_OCCURRENCE are project-local concepts (IDs >= 2,000,000,000) whose
names the site's ``concept`` table holds; without a row the value falls back to ``OT`` (DICOM
"other") / ``UNKNOWN``. Conditions are rolled up to the groups in ``condition_groups.csv``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, bindparam, inspect, text

GENDER = {8507: "male", 8532: "female"}
AGE_BAND_WIDTH = 10
AGE_TOP = 90
YEAR_BAND_WIDTH = 5
_MODALITY = re.compile(r"^[A-Z0-9]{1,16}$")
_NON_VALUE = re.compile(r"[^A-Z0-9 _-]+")


def sex_label(gender_concept_id: int | None) -> str:
    """OMOP gender concept -> ``male`` / ``female`` / ``unknown``."""
    return GENDER.get(gender_concept_id or 0, "unknown")


def age_band(age: int | None) -> str:
    """10-year band (``0-9`` ... ``80-89``), ``90+`` above; ``unknown`` without a birth year."""
    if age is None or age < 0:
        return "unknown"
    if age >= AGE_TOP:
        return f"{AGE_TOP}+"
    low = age - age % AGE_BAND_WIDTH
    return f"{low}-{low + AGE_BAND_WIDTH - 1}"


def year_band(year: int | None) -> str:
    """5-year band of the (shifted) study year, e.g. ``2015-2019``."""
    if year is None:
        return "unknown"
    low = year - year % YEAR_BAND_WIDTH
    return f"{low}-{low + YEAR_BAND_WIDTH - 1}"


def concept_rows(conn: Connection, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """concept_id -> (concept_code, concept_name) from the site's concept table, if it has one."""
    wanted = sorted({i for i in ids if i})
    if not wanted or not inspect(conn).has_table("concept"):
        return {}
    query = text("SELECT concept_id, concept_code, concept_name FROM concept WHERE concept_id IN :ids")
    query = query.bindparams(bindparam("ids", expanding=True))
    return {int(r[0]): (str(r[1] or ""), str(r[2] or "")) for r in conn.execute(query, {"ids": wanted})}


def modality_label(concept_id: int | None, concepts: dict[int, tuple[str, str]]) -> str:
    """DICOM modality code of a modality concept (its concept_code), ``OT`` when unknown."""
    code, name = concepts.get(concept_id or 0, ("", ""))
    for candidate in (code.upper(), name.upper()):
        if _MODALITY.match(candidate):
            return candidate
    return "OT"


def body_part_label(concept_id: int | None, concepts: dict[int, tuple[str, str]]) -> str:
    """Upper-case body part term (DICOM BodyPartExamined style), ``UNKNOWN`` when unknown."""
    code, name = concepts.get(concept_id or 0, ("", ""))
    for candidate in (code, name):
        label = _NON_VALUE.sub(" ", candidate.upper()).strip()[:64]
        if label and not label.isdigit():
            return label
    return "UNKNOWN"


@lru_cache(maxsize=1)
def condition_groups() -> dict[int, str]:
    """The shipped condition groups: concept_id -> label."""
    path = Path(__file__).with_name("condition_groups.csv")
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return {int(row["concept_id"]): row["label"] for row in csv.DictReader(lines)}


def condition_rollup(conn: Connection, concept_ids: Iterable[int]) -> dict[int, set[str]]:
    """condition_concept_id -> the group labels it rolls up to (empty when in no group)."""
    groups = condition_groups()
    ids = {i for i in concept_ids if i}
    out: dict[int, set[str]] = {i: ({groups[i]} if i in groups else set()) for i in ids}
    if ids and inspect(conn).has_table("concept_ancestor"):
        query = text(
            "SELECT ancestor_concept_id, descendant_concept_id FROM concept_ancestor "
            "WHERE ancestor_concept_id IN :groups AND descendant_concept_id IN :ids"
        ).bindparams(bindparam("groups", expanding=True), bindparam("ids", expanding=True))
        for anc, desc in conn.execute(query, {"groups": sorted(groups), "ids": sorted(ids)}):
            out[int(desc)].add(groups[int(anc)])
    return out
