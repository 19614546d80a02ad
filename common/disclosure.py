"""Cell-key perturbation of published counts (the ABS TableBuilder method), shared by every publisher.

Two publishes that differ by one patient must not give that patient's attributes away by
subtraction. Following the Australian Bureau of Statistics' cell-key method (Fraser & Wooton 2005;
Thompson, Broadfoot & Elazar 2013, "Methodology for the automatic confidentialisation of statistical
outputs from remote servers at the ABS"):

1. every record (person) gets a **record key**, a pseudo-random number derived at the site with the
   site key (:class:`common.crypto.Pseudonymizer`, namespace ``cellkey``) from the record's
   pseudonymous id — never a raw identifier, and unknown outside the site;
2. a cell's **cell key** is the sum of its records' keys modulo 1, plus a keyed offset of the cell
   itself (:func:`cell_offset`, uniform and secret), so the same set of records in the same cell
   always gives the same cell key;
3. the **perturbation table** maps (count, cell key) to the published count. The table used here
   implements unbiased random rounding to base ``b``: a count ``n = m*b + j`` is published as
   ``m*b + b`` when the cell key is below ``j/b`` and as ``m*b`` otherwise (so its expectation is
   ``n``; multiples of ``b`` are exact). Counts at or above the floor never fall below it.

Record keys are drawn from ``[0, 1/b)`` rather than ``[0, 1)`` (the "small record key" variant):
one patient joining or leaving moves the cell key by less than ``1/b``, so the cell's rounding
direction mostly stays and the published value changes only when the count crosses its secret
rounding threshold — about ``1/b`` of the time per unit of change, instead of about half the time
with keys redrawn uniformly. The cell offset keeps the cell key uniform and secret however few
records the cell holds.

The same cell content always gets the same published value, so re-asking or re-publishing does not
average the noise away. In one call (floor and perturbation; what a federated count query returns)::

    shown = publish_count(pseudonymizer, person_ids, "cohort-query/diabetes", floor=10)  # int or "<10"

or step by step::

    keys = [record_key(pseudonymizer, person_id, base=5) for person_id in persons_in_cell]
    u = cell_key(keys, cell_offset(pseudonymizer, "ct-chest/sex/female"))
    shown = perturb_count(len(persons_in_cell), u, base=5, floor=10)

:func:`unchanged_probability` gives the exact chance that a cell's published values stay the same
when one patient joins it (docs/cohort-summary.md, "Differencing").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import product
from typing import Protocol

NAMESPACE = "cellkey"
KEY_BITS = 32
KEY_SPACE = 1 << KEY_BITS
DEFAULT_BASE = 5


class _Digest(Protocol):
    def digest(self, namespace: str, value: str) -> bytes: ...


def record_key(pseudonymizer: _Digest, record_id: str | int, base: int = DEFAULT_BASE) -> int:
    """The record key of one record: an integer in ``[0, 2**32 / base)`` (the fraction ``key / 2**32``).

    Args:
        pseudonymizer: the site's :class:`common.crypto.Pseudonymizer` (keyed with the site key).
        record_id: the record's pseudonymous id (e.g. the OMOP ``person_id``), never a raw identifier.
        base: the perturbation table's base (record keys stay below ``1/base``).
    """
    _check_base(base)
    return int.from_bytes(pseudonymizer.digest(NAMESPACE, str(record_id))[:8], "big") % (KEY_SPACE // base)


def cell_offset(pseudonymizer: _Digest, cell: str) -> int:
    """The keyed offset of one cell (uniform in ``[0, 2**32)``), from a stable name of the cell.

    Args:
        pseudonymizer: the site's pseudonymizer.
        cell: a name of the cell that stays the same between publishes (collection, facet, value).
    """
    return int.from_bytes(pseudonymizer.digest(NAMESPACE + "-cell", cell)[:4], "big")


def cell_key(record_keys: Iterable[int], offset: int = 0) -> float:
    """``(offset + sum of the record keys)`` modulo 1, as a float in ``[0, 1)`` (exact integer sum)."""
    return ((offset + sum(record_keys)) % KEY_SPACE) / KEY_SPACE


def publish_count(
    pseudonymizer: _Digest,
    record_ids: Iterable[str | int],
    cell: str,
    *,
    floor: int,
    base: int = DEFAULT_BASE,
) -> int | str:
    """The publishable form of one count: ``"<floor"`` below the floor, else the perturbed count.

    Args:
        pseudonymizer: the site's pseudonymizer (keyed with the site key).
        record_ids: pseudonymous ids of the records counted (duplicates count once).
        cell: a stable name of the cell (the same question asked again must use the same name).
        floor: the site's small-cell floor k; 0 is published as 0.
        base: the perturbation table's base.
    """
    ids = set(record_ids)
    n = len(ids)
    if 0 < n < floor:
        return f"<{floor}"
    key = cell_key((record_key(pseudonymizer, i, base) for i in ids), cell_offset(pseudonymizer, cell))
    return perturb_count(n, key, base, floor)


def ptable(base: int = DEFAULT_BASE) -> list[list[tuple[float, float, int]]]:
    """The perturbation table: row ``j`` (the count modulo ``base``) lists (from, to, perturbation).

    A count ``n`` with ``n % base == j`` and cell key ``u`` in ``[from, to)`` is published as
    ``n + perturbation``.
    """
    _check_base(base)
    rows = [[(0.0, 1.0, 0)]]
    for j in range(1, base):
        rows.append([(0.0, j / base, base - j), (j / base, 1.0, -j)])
    return rows


def perturb_count(n: int, key: float, base: int = DEFAULT_BASE, floor: int = 0) -> int:
    """The published value of a true count ``n`` whose cell key is ``key``.

    Args:
        n: the true count (0 stays 0; counts between 1 and ``floor - 1`` must be suppressed by
            the caller, not perturbed).
        key: the cell key in ``[0, 1)``.
        base: the rounding base of the perturbation table (at least 2).
        floor: the publisher's small-cell floor; a count at or above it is never published below it.

    Raises:
        ValueError: a negative count, a key outside [0, 1) or a base below 2.
    """
    if n < 0 or not 0.0 <= key < 1.0:
        raise ValueError("count must be >= 0 and the cell key in [0, 1)")
    if n == 0:
        return 0
    for low, high, delta in ptable(base)[n % base]:
        if low <= key < high:
            shown = n + delta
            break
    if n >= floor > shown:
        shown = -(-floor // base) * base  # the first multiple of the base at or above the floor
    return shown


def _check_base(base: int) -> None:
    if isinstance(base, bool) or not isinstance(base, int) or base < 2:
        raise ValueError("the perturbation base must be an integer of at least 2")


def _rounds_up(n: int, base: int) -> float:
    """The cell-key threshold below which ``n`` is published rounded up (0: never)."""
    return (n % base) / base


def change_probability(
    counts: Sequence[int], contributions: Sequence[int], base: int = DEFAULT_BASE, steps: int = 400
) -> float:
    """Chance that some measure of one cell changes its published value when one patient joins it.

    The cell's measures (e.g. persons, studies, series) share one cell key ``u`` (uniform: the cell
    offset is secret); the joining patient's record key ``r`` (uniform in ``[0, 1/base)``, secret)
    moves it to ``u + r``. Integrated numerically on a ``steps x steps`` midpoint grid.

    Args:
        counts: the cell's true counts before the change, one per measure (above the floor).
        contributions: what the patient adds to each measure (persons: 1; at least 0 — a patient
            leaving is the same change reversed, from the smaller cell).
        base: the table's base.
        steps: grid resolution.

    Raises:
        ValueError: a negative contribution, or a base below 2.
    """
    _check_base(base)
    if any(c < 0 for c in contributions):
        raise ValueError("contributions are what a joining patient adds (>= 0)")
    changed = 0
    for a in range(steps):
        u = (a + 0.5) / steps
        old = [perturb_count(n, u, base) for n in counts]
        for b in range(steps):
            v = (u + (b + 0.5) / (steps * base)) % 1.0
            new = [perturb_count(n + c, v, base) for n, c in zip(counts, contributions, strict=True)]
            changed += new != old
    return changed / (steps * steps)


def differencing_bound(contributions: Sequence[int], base: int = DEFAULT_BASE, steps: int = 200) -> float:
    """The highest :func:`change_probability` over every position of the counts (their residues).

    Between two cells (e.g. female / male) an attacker who knows one patient joined guesses the
    patient's cell right with probability at most ``1/2 + bound/2``: a changed value pins the cell,
    unchanged values leave the guess at even odds. Removing a patient is the same change reversed.
    """
    residues = product(range(base), repeat=len(contributions))
    # counts far above the floor: only their residues matter
    return max(change_probability([10 * base + r for r in rs], contributions, base, steps) for rs in residues)
