"""The one function that turns a site's cohort into what may leave: :func:`release`.

Counts: the cohort size and its breakdowns by sex and age band, with the site's floor and the same
primary and complementary suppression as the cohort summary (:mod:`site_node.publish.suppression`).
Survival: a life table coarsened until every released interval rests on at least k persons at risk,
and on 0 or at least k events and censorings (:mod:`common.survival`), or nothing.
"""

from __future__ import annotations

import logging

from common.config import SiteSettings
from common.schemas.cohort_query import FedQueryParams, QueryResult
from common.survival import releasable_table
from site_node.db import get_engine
from site_node.publish.suppression import suppress_row, suppress_value
from site_node.query.cohort import breakdown, evaluate

log = logging.getLogger(__name__)


def release(settings: SiteSettings, params: FedQueryParams) -> QueryResult:
    """Evaluate ``params`` on the site's OMOP tables and return the releasable result."""
    k = settings.floor_k
    members = evaluate(get_engine(settings.database_url), params.cohort)
    total = suppress_value(len(members), k)
    by_sex, by_age = breakdown(members)
    published = isinstance(total, int)
    survival = None
    if params.survival:
        followed = [m for m in members if m.follow_up_days is not None]
        survival = releasable_table(
            [float(m.follow_up_days or 0.0) for m in followed],
            [m.died for m in followed],
            k,
            params.horizon_days,
        )
    log.info("fedquery: cohort evaluated (%s persons after the floor)", total)
    return QueryResult(
        site=settings.site_id,
        floor_k=k,
        persons=total if total is not None else 0,
        by_sex=suppress_row(by_sex, k, published) if by_sex else {},
        by_age_band=suppress_row(by_age, k, published) if by_age else {},
        survival=survival,
    )
