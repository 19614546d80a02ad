"""Small-cell suppression: the one copy used by the site's publish and by the hub's summary check.

Rules (docs/cohort-summary.md):

1. *Primary*: a count ``0 < n < k`` becomes the string ``"<k"``. Zero stays zero (a true zero is safe).
2. *Complementary*: in every breakdown row (the cells of one facet of one collection, one measure at
   a time) whose total is published, the hidden cells must together hold at least ``k``, both in
   truth and as anyone can derive them: the published total minus the published visible cells
   (:func:`derivable`). Otherwise the smallest published non-zero cell is suppressed too
   (``"suppressed"``), repeatedly. A single ``"<k"`` cell therefore never stands alone beside a
   published total, and several tiny suppressed cells cannot be recovered from their small sum.

The hub refuses (HTTP 422) a summary in which :func:`first_complementary_violation` finds a row whose
hidden cells can be derived below the floor. Subtraction only recovers hidden cells where the cells
of a row add up to the total: facets with one value per record (:data:`ADDITIVE_FACETS`). The
``condition`` facet is multi-valued (a person may have several conditions or none) and is not
checked by subtraction.
"""

from __future__ import annotations

from collections.abc import Mapping

from common.schemas.cohort_summary import MEASURES, SECONDARY, CohortSummary

#: Facets whose cells partition the collection (one value per series): subtraction applies.
ADDITIVE_FACETS = ("sex", "age_band", "study_year_band")


def below_marker(k: int) -> str:
    """The marker sent instead of a count below the floor."""
    return f"<{k}"


def suppress_value(value: int | None, k: int) -> int | str | None:
    """Primary suppression of one count."""
    if value is None:
        return None
    return below_marker(k) if 0 < value < k else value


def derivable(total: int | str | None, row: Mapping[str, int | str | None], k: int) -> bool:
    """Whether the hidden cells of a published row can be pinned below ``k`` by subtraction.

    Args:
        total: the row's published total (only a number allows subtraction).
        row: facet value -> published count, ``"<k"`` or ``"suppressed"``.
        k: the floor.

    Returns:
        True when the row hides at least one cell and ``total - sum(visible cells) < k``.
    """
    if not isinstance(total, int) or any(v is None for v in row.values()):
        return False
    if not any(isinstance(v, str) for v in row.values()):
        return False
    visible = sum(v for v in row.values() if isinstance(v, int))
    return total - visible < k


def suppress_row(
    cells: Mapping[str, int],
    k: int,
    total_published: bool | int = True,
    shown: Mapping[str, int] | None = None,
) -> dict[str, int | str]:
    """Suppress one breakdown row (sibling cells of one measure).

    Args:
        cells: facet value -> true count.
        k: the site's floor.
        total_published: False when the row's total is not published as a number (no complementary
            suppression needed), True when it is, or the published total itself (then the row is
            also made safe against subtraction, :func:`derivable`).
        shown: facet value -> the value to publish for a visible cell (e.g. a perturbed count);
            the true count by default.

    Returns:
        facet value -> published count or marker.
    """
    out: dict[str, int | str] = {}
    hidden_sum = 0
    for value, n in cells.items():
        if 0 < n < k:
            out[value] = below_marker(k)
            hidden_sum += n
        else:
            out[value] = shown[value] if shown is not None and n else n
    if total_published is False or hidden_sum == 0:
        return out
    total = total_published if not isinstance(total_published, bool) else None
    candidates = sorted((n, value) for value, n in cells.items() if isinstance(out[value], int) and n > 0)
    while candidates and (hidden_sum < k or derivable(total, out, k)):
        n, value = candidates.pop(0)
        out[value] = SECONDARY
        hidden_sum += n
    return out


def first_complementary_violation(summary: CohortSummary) -> str | None:
    """The first row whose hidden cells can be derived below the floor (its path); None when safe."""
    k = summary.floor_k
    for i, coll in enumerate(summary.collections):
        for facet in ADDITIVE_FACETS:
            cells = coll.facets.get(facet)  # type: ignore[call-overload]
            if not cells:
                continue
            for measure in MEASURES:
                row = {value: getattr(counts, measure) for value, counts in cells.items()}
                if derivable(getattr(coll.totals, measure), row, k):
                    return (
                        f"collections.{i}.facets.{facet}.{measure}: hidden cells can be derived "
                        f"below the floor k={k} from the total"
                    )
    return None
