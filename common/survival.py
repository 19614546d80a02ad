"""Kaplan-Meier curves that can be released: life tables coarsened until every step rests on k.

Rule (docs/access.md, "Survival curves"): a curve is released as a life table of equal intervals
``[0, w), [w, 2w), ...`` up to the horizon, ``w`` taken from :data:`KM_WIDTHS` (each width divides
the next, so tables can be merged into coarser ones). For a width to be releasable every released
interval must have

- at least ``k`` persons at risk at its start (the table is cut before the first interval with
  fewer: the tail of the curve is not released), and
- 0 or at least ``k`` events, and 0 or at least ``k`` censored persons (so neither who had the
  event nor who left follow-up can be narrowed below k, also by differencing at-risk numbers).

The finest width that satisfies the rule is released; when none does, no curve is released. The
hub pools sites' tables by merging each into the coarsest width any site used (merging keeps the
rule: sums of numbers that are each 0 or >= k are 0 or >= k) and checks the pooled table again.
The survival estimate is the Kaplan-Meier product over the released intervals (events counted at
each interval's end, computed with lifelines), with Greenwood 95% bounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from common.schemas.cohort_query import KM_WIDTHS

Row = dict[str, int]


def life_table(times: Sequence[float], events: Sequence[bool], width: int, horizon: int) -> list[Row]:
    """Per-interval at-risk, events and censored for follow-up ``times`` (days) and event flags.

    Follow-up past ``horizon`` is censored at the horizon (it counts as censored in the last interval).
    """
    rows: list[Row] = []
    for start in range(0, horizon, width):
        end = start + width
        at_risk = sum(1 for t in times if t >= start)
        ev = sum(1 for t, e in zip(times, events, strict=True) if start <= t < end and e)
        left = sum(1 for t in times if start <= t < end)
        if end >= horizon:  # follow-up beyond the horizon is censored at the horizon
            left += sum(1 for t in times if t >= end)
        rows.append({"start": start, "end": end, "at_risk": at_risk, "events": ev, "censored": left - ev})
    return rows


def _ok(value: int, k: int) -> bool:
    return value == 0 or value >= k


def truncate(rows: list[Row], k: int) -> list[Row]:
    """The rows before the first interval with fewer than ``k`` at risk."""
    kept: list[Row] = []
    for row in rows:
        if row["at_risk"] < k:
            break
        kept.append(row)
    return kept


def check_table(rows: Iterable[Row], k: int) -> str | None:
    """The first interval breaking the rule, described; None when the table may be released."""
    for row in rows:
        if row["at_risk"] < k:
            return f"interval {row['start']}-{row['end']}: fewer than k at risk"
        if not _ok(row["events"], k):
            return f"interval {row['start']}-{row['end']}: between 1 and k-1 events"
        if not _ok(row["censored"], k):
            return f"interval {row['start']}-{row['end']}: between 1 and k-1 censored"
    return None


def merge(rows: list[Row], width: int) -> list[Row]:
    """Merge a table of finer, equal intervals into intervals of ``width`` (complete ones only)."""
    if not rows:
        return []
    step = rows[0]["end"] - rows[0]["start"]
    if width % step:
        raise ValueError("width must be a multiple of the table's interval")
    per = width // step
    merged: list[Row] = []
    for i in range(0, len(rows) - per + 1, per):
        part = rows[i : i + per]
        merged.append(
            {
                "start": part[0]["start"],
                "end": part[-1]["end"],
                "at_risk": part[0]["at_risk"],
                "events": sum(r["events"] for r in part),
                "censored": sum(r["censored"] for r in part),
            }
        )
    return merged


def releasable_table(
    times: Sequence[float], events: Sequence[bool], k: int, horizon: int, widths: Sequence[int] = KM_WIDTHS
) -> dict[str, Any]:
    """The finest releasable life table of one site's persons, or why none is released."""
    if len(times) < k:
        return {"width_days": None, "rows": [], "withheld": "fewer than k persons"}
    for width in (w for w in widths if horizon % w == 0):
        rows = truncate(life_table(times, events, width, horizon), k)
        if rows and check_table(rows, k) is None and any(r["events"] for r in rows):
            return {"width_days": width, "rows": rows, "withheld": None}
    return {"width_days": None, "rows": [], "withheld": "no interval width keeps every step at k or more"}


def pool_tables(tables: list[dict[str, Any]], k: int, widths: Sequence[int] = KM_WIDTHS) -> dict[str, Any]:
    """Pool released site tables: merge to a common width, sum, and check again (coarsening further)."""
    usable = [t for t in tables if t.get("rows")]
    if not usable:
        return {"width_days": None, "rows": [], "withheld": "no site released a survival table"}
    start_width = max(int(t["width_days"]) for t in usable)
    for width in (w for w in widths if w >= start_width):
        try:
            merged = [merge(list(t["rows"]), width) for t in usable]
        except ValueError:
            continue
        length = min(len(m) for m in merged)
        if length == 0:
            break
        pooled = [
            {
                "start": merged[0][i]["start"],
                "end": merged[0][i]["end"],
                **{key: sum(m[i][key] for m in merged) for key in ("at_risk", "events", "censored")},
            }
            for i in range(length)
        ]
        if check_table(pooled, k) is None:
            return {"width_days": width, "rows": pooled, "withheld": None}
    return {
        "width_days": None,
        "rows": [],
        "withheld": "the pooled table cannot keep every step at k or more",
    }


def km_curve(rows: list[Row]) -> list[dict[str, float]]:
    """Kaplan-Meier survival at each interval end (lifelines, events at the end of their interval)."""
    if not rows:
        return []
    from lifelines import KaplanMeierFitter

    durations, observed, weights = [], [], []
    for row in rows:
        for flag, count in ((True, row["events"]), (False, row["censored"])):
            if count:
                durations.append(float(row["end"]))
                observed.append(flag)
                weights.append(float(count))
    still = rows[-1]["at_risk"] - rows[-1]["events"] - rows[-1]["censored"]
    if still > 0:  # persons at risk beyond the released table: censored at its end
        durations.append(float(rows[-1]["end"]) + 0.5)
        observed.append(False)
        weights.append(float(still))
    fitter = KaplanMeierFitter().fit(durations, observed, weights=weights)
    bounds = fitter.confidence_interval_survival_function_
    out = []
    for row in rows:
        t = float(row["end"])
        out.append(
            {
                "day": t,
                "survival": float(fitter.survival_function_at_times(t).iloc[0]),
                "lower": float(bounds[bounds.index <= t].iloc[-1, 0]),
                "upper": float(bounds[bounds.index <= t].iloc[-1, 1]),
            }
        )
    return out
