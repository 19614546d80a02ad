"""The one function that turns a site's cohort into what may leave: :func:`release`.

Counts: the cohort size and its breakdowns by sex and age band with the same floor, complementary
suppression and cell-key perturbation as the cohort summary (:mod:`common.suppression`,
:func:`common.disclosure.publish_count`). Every fedquery cell uses the same cell name, so its
perturbation depends only on who is in it: asking the same cohort again, or in other words, gives
the same numbers and cannot average the noise away.

Survival: at each width the life table is cut by the rule of :mod:`common.survival` on the true
counts (every released interval rests on >= k at risk, 0 or >= k events and censorings); its numbers
are then perturbed the same way (at risk at day 0, events and censorings per interval; later at-risk
numbers derived from them, so the table stays consistent) and the rule applied again to what would be
released. The width with the most released steps wins.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from common.config import SiteSettings
from common.disclosure import publish_count
from common.schemas.cohort_query import KM_WIDTHS, FedQueryParams, QueryResult
from common.suppression import suppress_row
from common.survival import life_table, releasable_prefix
from site_node.db import get_engine
from site_node.publish import concepts
from site_node.query.cohort import Member, evaluate

log = logging.getLogger(__name__)
#: One cell name for every fedquery count (see the module docstring).
CELL = "fedquery"

Publish = Callable[[Iterable[int]], int | str]


def _breakdown(members: list[Member], key: Callable[[Member], str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for m in members:
        groups[key(m)].append(m.person_id)
    return dict(sorted(groups.items()))


def _row(groups: dict[str, list[int]], k: int, total: int | str, publish: Publish) -> dict[str, int | str]:
    true = {value: len(ids) for value, ids in groups.items()}
    shown = {value: publish(ids) if len(ids) >= k else 0 for value, ids in groups.items()}
    return suppress_row(true, k, total if isinstance(total, int) else False, shown)  # type: ignore[arg-type]


def perturbed_rows(
    rows: list[dict[str, int]], followed: list[Member], horizon: int, publish: Publish
) -> list[dict[str, int]]:
    """The perturbed numbers of a life table (at risk at day 0, events and censorings per interval).

    Later at-risk numbers are derived from the perturbed ones, so the table stays consistent; the
    caller applies the rule again to the result.
    """
    if not rows:
        return []
    at_risk = publish(m.person_id for m in followed)
    out = []
    for row in rows:
        start, end = row["start"], row["end"]
        inside = [m for m in followed if start <= (m.follow_up_days or 0.0) < end]
        if end >= horizon:  # follow-up beyond the horizon is censored in the last interval
            inside += [m for m in followed if (m.follow_up_days or 0.0) >= end]
        events = publish(m.person_id for m in inside if m.died)
        censored = publish(m.person_id for m in inside if not m.died)
        if not (isinstance(at_risk, int) and isinstance(events, int) and isinstance(censored, int)):
            break  # cannot happen for rows that obey the rule; never release a marker here
        out.append({"start": start, "end": end, "at_risk": at_risk, "events": events, "censored": censored})
        at_risk = at_risk - events - censored
    return out


def survival_table(followed: list[Member], k: int, horizon: int, publish: Publish) -> dict[str, Any]:
    """The released life table: at each width the rule on the true counts, then on the perturbed ones.

    The width whose released table has the most steps wins (the finer on a tie).
    """
    if len(followed) < k:
        return {"width_days": None, "rows": [], "withheld": "fewer than k persons"}
    times = [float(m.follow_up_days or 0.0) for m in followed]
    died = [m.died for m in followed]
    best: tuple[int, list[dict[str, int]]] | None = None
    for width in (w for w in KM_WIDTHS if horizon % w == 0):
        true_rows = releasable_prefix(life_table(times, died, width, horizon), k)
        rows = releasable_prefix(perturbed_rows(true_rows, followed, horizon, publish), k)
        steps = sum(1 for r in rows if r["events"])
        if steps and (best is None or steps > sum(1 for r in best[1] if r["events"])):
            best = (width, rows)
    if best is None:
        return {"width_days": None, "rows": [], "withheld": "no interval width keeps k or more events"}
    return {"width_days": best[0], "rows": best[1], "withheld": None}


def release(settings: SiteSettings, params: FedQueryParams, pseudonymizer: Any) -> QueryResult:
    """Evaluate ``params`` on the site's OMOP tables and return the releasable result.

    Args:
        settings: the site's settings (floor ``floor_k``, ``disclosure_base``).
        params: the validated query.
        pseudonymizer: the site's keyed pseudonymizer (record keys of the cell-key method).
    """
    k = settings.floor_k

    def publish(ids: Iterable[int]) -> int | str:
        return publish_count(pseudonymizer, ids, CELL, floor=k, base=settings.disclosure_base)

    members = evaluate(get_engine(settings.database_url), params.cohort)
    total = publish(m.person_id for m in members)
    survival = None
    if params.survival:
        followed = [m for m in members if m.follow_up_days is not None]
        survival = survival_table(followed, k, params.horizon_days, publish)
    log.info("fedquery: cohort evaluated (%s persons as released)", total)
    return QueryResult(
        site=settings.site_id,
        floor_k=k,
        persons=total,
        by_sex=_row(_breakdown(members, lambda m: m.sex), k, total, publish),
        by_age_band=_row(_breakdown(members, lambda m: concepts.age_band(m.age)), k, total, publish),
        survival=survival,
    )
