"""How stored counts are shown: suppressed cells as ``"<k"``, sums with suppressed parts as lower bounds.

The functions build plain JSON-ready dicts in the shape of :class:`~central_hub.catalog.schemas.CountPublic`
and :class:`~central_hub.catalog.schemas.CellPublic` (the search builds hundreds per answer; pydantic
models would dominate its cost). The API documents and tests that shape.
"""

from __future__ import annotations

from typing import Any

from central_hub.catalog.models import BELOW_FLOOR, COMPLEMENTARY, SHOWN
from common.schemas import MEASURES, SECONDARY

Count = dict[str, Any]


def _count(value: int | None, display: str, lower_bound: bool = False) -> Count:
    return {"value": value, "display": display, "lower_bound": lower_bound}


def cell_count(n: int | None, s: int, floor_k: int | None) -> Count:
    """One stored cell -> its public form."""
    if s == SHOWN:
        return _count(n, str(n))
    if s == BELOW_FLOOR:
        return _count(None, f"<{floor_k or '?'}")
    if s == COMPLEMENTARY:
        return _count(None, SECONDARY)
    return _count(None, "n/a")


def summed_count(known: int | None, suppressed_parts: int, parts: int, unavailable_parts: int = 0) -> Count:
    """A sum over cells: the known part, flagged as a lower bound when any part was suppressed.

    A suppressed cell (``"<k"`` or ``"suppressed"``) is never a number, but it is never empty either
    (zero is published as 0), so each adds 1 to the lower bound: three ``"<10"`` cells sum to "≥ 3",
    not "≥ 0". A sum whose parts are all unavailable is ``n/a``; unavailable parts add nothing.
    """
    known = int(known or 0)
    if parts and unavailable_parts == parts:
        return _count(None, "n/a")
    if suppressed_parts or unavailable_parts:
        bound = known + int(suppressed_parts)
        return _count(bound, f"≥ {bound}", True)
    return _count(known, str(known))


def summed_counts(
    known: list[int], suppressed_parts: list[int], parts: list[int], unavailable_parts: list[int]
) -> list[Count]:
    """:func:`summed_count` over parallel lists (one call for hundreds of sums, same rules)."""
    return [
        _count(None, "n/a")
        if p and u == p
        else {"value": k + h, "display": f"≥ {k + h}", "lower_bound": True}
        if h or u
        else {"value": k, "display": str(k), "lower_bound": False}
        for k, h, p, u in zip(known, suppressed_parts, parts, unavailable_parts, strict=True)
    ]


def cell_public(row: object, floor_k: int | None) -> dict[str, Count]:
    """A row with ``n_*`` / ``s_*`` attributes -> the four measures' public counts."""
    return {m: cell_count(getattr(row, f"n_{m}"), getattr(row, f"s_{m}"), floor_k) for m in MEASURES}
