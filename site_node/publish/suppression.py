"""Small-cell suppression of one site's counts (pure functions, no I/O).

Rules (docs/cohort-summary.md):

1. *Primary*: a count ``0 < n < k`` becomes the string ``"<k"``. Zero stays zero (a true zero is safe).
2. *Complementary*: in every breakdown row (the cells of one facet of one collection, one measure at
   a time) whose total is published, the suppressed cells must together hold at least ``k``;
   otherwise the smallest published non-zero cell is suppressed too (``"suppressed"``), repeatedly.
   A single ``"<k"`` cell therefore never stands alone beside a published total, and several tiny
   suppressed cells cannot be recovered from their small known sum.
"""

from __future__ import annotations

from common.schemas import SECONDARY


def below_marker(k: int) -> str:
    """The marker sent instead of a count below the floor."""
    return f"<{k}"


def suppress_value(value: int | None, k: int) -> int | str | None:
    """Primary suppression of one count."""
    if value is None:
        return None
    return below_marker(k) if 0 < value < k else value


def suppress_row(cells: dict[str, int], k: int, total_published: bool = True) -> dict[str, int | str]:
    """Suppress one breakdown row (sibling cells of one measure).

    Args:
        cells: facet value -> true count.
        k: the site's floor.
        total_published: whether the row's total is published as a number (complementary
            suppression is only needed then).

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
            out[value] = n
    if not total_published or hidden_sum == 0:
        return out
    shown = sorted((n, value) for value, n in cells.items() if isinstance(out[value], int) and n > 0)
    while hidden_sum < k and shown:
        n, value = shown.pop(0)
        out[value] = SECONDARY
        hidden_sum += n
    return out
