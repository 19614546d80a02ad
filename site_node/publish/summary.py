"""Computing a site's cohort summary and publishing it to the hub.

:func:`build_summary` counts persons, studies, series and instances per collection (modality x body
part) and per facet value, then applies the site's floor (:mod:`site_node.publish.suppression`).
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

from common.errors import ConfigError
from common.schemas import BREAKDOWN_FACETS, MEASURES, CohortSummary, Collection, Counts
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


def suppressed_collection(group: _Group, k: int) -> Collection:
    """Apply the floor ``k`` to one counted collection (primary and complementary suppression)."""
    raw_total = group.total.raw()
    totals = {m: suppress_value(v, k) for m, v in raw_total.items()}
    facets: dict[str, dict[str, dict[str, int | str | None]]] = {}
    for facet in BREAKDOWN_FACETS:
        cells = group.facets.get(facet, {})
        if not cells:
            continue
        raw = {value: cell.raw() for value, cell in sorted(cells.items())}
        out: dict[str, dict[str, int | str | None]] = {value: {} for value in raw}
        for measure in MEASURES:
            if any(r[measure] is None for r in raw.values()):
                for value in raw:
                    out[value][measure] = None
                continue
            published = isinstance(totals[measure], int)
            row = suppress_row({v: int(r[measure] or 0) for v, r in raw.items()}, k, published)
            for value, shown in row.items():
                out[value][measure] = shown
        facets[facet] = out
    key = f"{group.modality}-{group.body_part}".lower().replace(" ", "-")
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
    collections = [suppressed_collection(g, k) for g in groups]
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
