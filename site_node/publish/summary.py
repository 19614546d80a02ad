"""Computing a site's cohort summary and publishing it to the hub.

:func:`build_summary` counts persons, studies, series and instances per collection (modality x body
part) and per facet value, perturbs every count with the cell-key method (:mod:`common.disclosure`)
and applies the site's floor (:mod:`common.suppression`).
:func:`publish` serialises it to canonical JSON and hands the exact bytes to
:func:`site_node.outbound.send_outbound`, which sends them and appends them to the ledger.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from common.crypto import Pseudonymizer
from common.disclosure import cell_key, cell_offset, perturb_count, record_key
from common.errors import ConfigError
from common.schemas import BREAKDOWN_FACETS, MEASURES, CohortSummary, Collection, Counts
from common.suppression import ADDITIVE_FACETS
from site_node.home import SiteContext
from site_node.outbound import OutboundReceipt, send_outbound
from site_node.publish import concepts
from site_node.publish.omop_read import SeriesRow, read_conditions, read_series
from site_node.publish.suppression import suppress_row, suppress_value

log = logging.getLogger(__name__)
SUMMARY_PATH = "/summaries"


@dataclass
class _Cell:
    """Distinct persons/studies/series and summed instances of one cell."""

    persons: set[int] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    instances: int = 0
    instances_known: bool = False

    def add(self, row: SeriesRow) -> None:
        self.persons.add(row.person_id)
        self.studies.add(row.study_uid)
        if row.series_uid not in self.series:
            self.series.add(row.series_uid)
            if row.instances is not None:
                self.instances += int(row.instances)
                self.instances_known = True

    def raw(self) -> dict[str, int | None]:
        return {
            "persons": len(self.persons),
            "studies": len(self.studies),
            "series": len(self.series),
            "instances": self.instances if self.instances_known else None,
        }


@dataclass
class _Group:
    """One collection being counted."""

    modality: str
    body_part: str
    total: _Cell = field(default_factory=_Cell)
    facets: dict[str, dict[str, _Cell]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(_Cell))
    )


def _facet_values(row: SeriesRow, conditions: dict[int, set[str]]) -> dict[str, list[str]]:
    age = row.date.year - row.year_of_birth if row.date and row.year_of_birth else None
    return {
        "sex": [concepts.sex_label(row.gender_concept_id)],
        "age_band": [concepts.age_band(age)],
        "condition": sorted(conditions.get(row.person_id, ())),
        "study_year_band": [concepts.year_band(row.date.year if row.date else None)],
    }


def _person_conditions(engine: Engine, rows: list[SeriesRow]) -> dict[int, set[str]]:
    by_person = read_conditions(engine, {r.person_id for r in rows})
    with engine.connect() as conn:
        rollup = concepts.condition_rollup(conn, {c for cs in by_person.values() for c in cs})
    return {pid: set().union(*(rollup.get(c, set()) for c in cs)) for pid, cs in by_person.items()}


def count_groups(engine: Engine, rows: list[SeriesRow]) -> list[_Group]:
    """Group series into collections and count every facet cell (true counts, site-internal)."""
    with engine.connect() as conn:
        ids = {r.modality_concept_id or 0 for r in rows} | {r.anatomic_site_concept_id or 0 for r in rows}
        names = concepts.concept_rows(conn, ids)

    def label_of(row: SeriesRow) -> tuple[str, str]:
        return (
            concepts.modality_label(row.modality_concept_id, names),
            concepts.body_part_label(row.anatomic_site_concept_id, names),
        )

    return group_rows(rows, label_of, _person_conditions(engine, rows))


def group_rows(
    rows: Iterable[SeriesRow],
    label_of: Callable[[SeriesRow], tuple[str, str]],
    conditions: dict[int, set[str]],
) -> list[_Group]:
    """Count series into collections keyed by ``label_of(row)`` = (modality, body part).

    Args:
        rows: the series.
        label_of: the collection's (modality, body part) of a series.
        conditions: person_id -> condition group labels.
    """
    groups: dict[tuple[str, str], _Group] = {}
    for row in rows:
        key = label_of(row)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(*key)
        group.total.add(row)
        for facet, values in _facet_values(row, conditions).items():
            for value in values:
                group.facets[facet][value].add(row)
    return [groups[k] for k in sorted(groups)]


@dataclass
class CellKeys:
    """The site's cell-key perturbation of published counts (:mod:`common.disclosure`).

    Every measure of a cell shares the cell key of the persons in it; record keys are cached per person.
    """

    pseudonymizer: Pseudonymizer
    base: int
    floor: int
    _records: dict[int, int] = field(default_factory=dict)

    def key(self, cell: _Cell, name: str) -> float:
        """The cell key of ``cell`` (``name``: a stable name of the cell, e.g. ``ct-chest/sex/male``)."""
        keys = []
        for person in cell.persons:
            rk = self._records.get(person)
            if rk is None:
                rk = self._records[person] = record_key(self.pseudonymizer, person, self.base)
            keys.append(rk)
        return cell_key(keys, cell_offset(self.pseudonymizer, name))

    def shown(self, raw: dict[str, int | None], key: float) -> dict[str, int | None]:
        """Perturbed counts of one cell (None stays None)."""
        return {
            m: None if v is None else perturb_count(v, key, self.base, self.floor) for m, v in raw.items()
        }


def _published(
    raw: dict[str, int | None], shown: dict[str, int | None], k: int
) -> dict[str, int | str | None]:
    """Primary suppression on the true counts, the perturbed value for the others."""
    return {m: suppress_value(v, k) if v is None or 0 < v < k else shown[m] for m, v in raw.items()}


def suppressed_collection(group: _Group, k: int, cell_keys: CellKeys | None = None) -> Collection:
    """Apply the floor ``k`` to one counted collection (primary and complementary suppression).

    With ``cell_keys`` every published count is perturbed (cell-key method) and facet cells carry
    persons only: a patient adds exactly one person to a cell, so the published value moves with
    probability at most ``1/base`` (:func:`common.disclosure.differencing_bound`), whereas their own
    numbers of studies, series and images would show which cell they joined. The complementary rule
    then also holds against subtraction of the published values.
    """
    key = f"{group.modality}-{group.body_part}".lower().replace(" ", "-")
    raw_total = group.total.raw()
    if cell_keys is not None:
        shown_total = cell_keys.shown(raw_total, cell_keys.key(group.total, f"{key}/total"))
    else:
        shown_total = dict(raw_total)
    totals = _published(raw_total, shown_total, k)
    facets: dict[str, dict[str, dict[str, int | str | None]]] = {}
    for facet in BREAKDOWN_FACETS:
        cells = group.facets.get(facet, {})
        if not cells:
            continue
        raw = {value: cell.raw() for value, cell in sorted(cells.items())}
        if cell_keys is not None:  # facet cells publish persons only (see the docstring)
            for counts in raw.values():
                counts.update(studies=None, series=None, instances=None)
        shown = {
            value: cell_keys.shown(raw[value], cell_keys.key(cell, f"{key}/{facet}/{value}"))
            if cell_keys is not None
            else raw[value]
            for value, cell in cells.items()
        }
        out: dict[str, dict[str, int | str | None]] = {value: {} for value in raw}
        for measure in MEASURES:
            if any(r[measure] is None for r in raw.values()):
                for value in raw:
                    out[value][measure] = None
                continue
            total = totals[measure]
            published: bool | int = isinstance(total, int)
            if published and facet in ADDITIVE_FACETS:
                published = int(total)  # type: ignore[arg-type]
            row = suppress_row(
                {v: int(r[measure] or 0) for v, r in raw.items()},
                k,
                published,
                {v: int(shown[v][measure] or 0) for v in raw},
            )
            for value, cell_value in row.items():
                out[value][measure] = cell_value
        facets[facet] = out
    description = f"{group.modality} {group.body_part.lower()} imaging"
    return Collection(
        key=key,
        modality=group.modality,
        body_part=group.body_part,
        description=description,
        totals=Counts(**totals),
        facets={f: {v: Counts(**c) for v, c in cells.items()} for f, cells in facets.items()},
    )


def build_summary(site: SiteContext) -> CohortSummary:
    """Compute the site's suppressed cohort summary from its OMOP and imaging tables."""
    k = site.settings.floor_k
    rows = read_series(site.engine, site.settings.export_dir)
    groups = count_groups(site.engine, rows)
    cell_keys = CellKeys(site.pseudonymizer(), site.settings.disclosure_base, k)
    collections = [suppressed_collection(g, k, cell_keys) for g in groups]
    log.info("cohort summary: %d collections from %d series", len(collections), len(rows))
    return CohortSummary(site=site.settings.site_id, floor_k=k, collections=collections)


def summary_bytes(summary: CohortSummary) -> bytes:
    """Canonical JSON bytes (sorted keys, compact, UTF-8): exactly what leaves the site."""
    return json.dumps(summary.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()


def publish(
    site: SiteContext,
    *,
    hub_url: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
) -> tuple[bytes, OutboundReceipt]:
    """Compute the summary and send it to the hub (or, with ``dry_run``, only record it).

    Returns:
        The exact bytes and the ledger receipt.

    Raises:
        ConfigError: no hub URL or token configured (not needed for a dry run).
        RemoteError: the hub refused the summary or could not be reached.
    """
    url = hub_url or site.settings.hub_url
    secret = token or (site.settings.hub_token.get_secret_value() if site.settings.hub_token else None)
    if not url:
        if not dry_run:
            raise ConfigError("no hub URL: pass --hub or set hub_url in site.toml", field="hub_url")
        url = "(dry-run)"
    if not secret and not dry_run:
        raise ConfigError("no hub token: pass --token or set hub_token", field="hub_token")
    payload = summary_bytes(build_summary(site))
    dest = url.rstrip("/") + SUMMARY_PATH if url != "(dry-run)" else url
    receipt = send_outbound(
        site.engine,
        url=dest,
        kind="cohort_summary",
        payload=payload,
        token=secret,
        dry_run=dry_run,
        method="PUT",
    )
    return payload, receipt
