"""Kaplan-Meier curves that can be released: life tables coarsened until every step rests on k.

Rule (docs/access.md, "Survival curves"). A site counts follow-up in equal intervals
``[0, w), [w, 2w), ...`` up to the horizon, for each width ``w`` of :data:`KM_WIDTHS` (30 to 2880
days, each dividing the next). At each width the released table is the longest prefix, from time 0,
whose every interval has

- at least ``k`` persons at risk at its start, and
- 0 or at least ``k`` events, and 0 or at least ``k`` censored persons (neither who had the event
  nor who left follow-up can be narrowed below k, not even by differencing at-risk numbers);

and after whose last interval 0 or at least ``k`` persons remain at risk (else that interval is
dropped too), so no number below k can be derived from the table. The width whose table has the
most steps (intervals with events) is released, the finer one on a tie; with no step at any width
no curve is released.

The hub pools sites' tables by merging each into the coarsest width any site used (complete groups
of intervals only; sums of numbers that are each 0 or >= k are 0 or >= k), adding them interval by
interval and applying the same rule with the largest floor of the sites, coarsening further when it
fails. The survival estimate is the Kaplan-Meier product over the released intervals (events at each
interval's end, computed with lifelines), with Greenwood 95% bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _remaining(row: Row) -> int:
    return row["at_risk"] - row["events"] - row["censored"]


def releasable_prefix(rows: list[Row], k: int) -> list[Row]:
    """The longest prefix of ``rows`` that obeys the rule (see the module docstring)."""
    out: list[Row] = []
    for row in rows:
        if row["at_risk"] < k or not _ok(row["events"], k) or not _ok(row["censored"], k):
            break
        out.append(row)
    if out and not _ok(_remaining(out[-1]), k):
        out.pop()  # its start had >= k at risk: what remains after the new last interval is >= k
    return out


def check_table(rows: list[Row], k: int) -> str | None:
    """The first place where the table breaks the rule, described; None when it may be released."""
    for i, row in enumerate(rows):
        where = f"interval {row['start']}-{row['end']}"
        if row["start"] != (rows[i - 1]["end"] if i else 0):
            return f"{where}: not contiguous from day 0"
        if row["at_risk"] < k:
            return f"{where}: fewer than k at risk"
        if not _ok(row["events"], k):
            return f"{where}: between 1 and k-1 events"
        if not _ok(row["censored"], k):
            return f"{where}: between 1 and k-1 censored"
        if i + 1 < len(rows) and rows[i + 1]["at_risk"] != _remaining(row):
            return f"{where}: at-risk numbers do not add up"
    if rows and not _ok(_remaining(rows[-1]), k):
        return "between 1 and k-1 persons remain at risk after the last interval"
    return None


def merge(rows: list[Row], width: int) -> list[Row]:
    """Merge a table of equal intervals into intervals of ``width`` (complete groups only).

    Raises:
        ValueError: ``width`` is not a multiple of the table's interval.
    """
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
    """One site's releasable life table (the module's rule), or why none is released."""
    if len(times) < k:
        return {"width_days": None, "rows": [], "withheld": "fewer than k persons"}
    best: tuple[int, list[Row]] | None = None
    for width in (w for w in widths if horizon % w == 0):
        rows = releasable_prefix(life_table(times, events, width, horizon), k)
        steps = sum(1 for r in rows if r["events"])
        if steps and (best is None or steps > sum(1 for r in best[1] if r["events"])):
            best = (width, rows)
    if best is None:
        return {"width_days": None, "rows": [], "withheld": "no interval width keeps k or more events"}
    return {"width_days": best[0], "rows": best[1], "withheld": None}


def _sum_tables(merged: list[list[Row]]) -> list[Row]:
    length = min(len(m) for m in merged)
    return [
        {
            "start": merged[0][i]["start"],
            "end": merged[0][i]["end"],
            **{key: sum(m[i][key] for m in merged) for key in ("at_risk", "events", "censored")},
        }
        for i in range(length)
    ]


def pool_tables(
    tables: dict[str, dict[str, Any]], k: int, widths: Sequence[int] = KM_WIDTHS
) -> dict[str, Any]:
    """Pool released site tables: merge to a common width, add, apply the rule again.

    A site whose table is too short to fill one interval of a width is left out of the pool at that
    width; the width that pools the most sites (then has the most steps) wins. ``sites`` in the
    answer names the sites in the pooled curve.
    """
    usable = {name: t for name, t in tables.items() if t.get("rows")}
    best: tuple[int, int, int, list[Row], list[str]] | None = None
    for width in widths:
        merged = {}
        for name, table in usable.items():
            if int(table["width_days"]) <= width and width % int(table["width_days"]) == 0:
                rows = merge(list(table["rows"]), width)
                if rows:
                    merged[name] = rows
        if not merged:
            continue
        rows = releasable_prefix(_sum_tables(list(merged.values())), k)
        steps = sum(1 for r in rows if r["events"])
        if steps and (best is None or (len(merged), steps) > (best[0], best[1])):
            best = (len(merged), steps, width, rows, sorted(merged))
    if best is None:
        return {"width_days": None, "rows": [], "sites": [], "withheld": "no pooled table keeps k or more"}
    return {"width_days": best[2], "rows": best[3], "sites": best[4], "withheld": None}


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
