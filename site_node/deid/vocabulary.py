"""Clean Descriptors: keep only tokens from the shipped radiology vocabulary, drop everything else.

``'CT CHEST W CONTRAST follow-up for John Smith' -> 'CT CHEST W CONTRAST follow-up'``. Tokens are
split on white space; a token is kept when its upper-cased form (trimmed of surrounding punctuation)
is in the vocabulary, or when every part of it split on ``- / _ + , : ;`` is. Kept tokens keep their
original spelling.

Numbers are where identifiers hide (dates, phone numbers, IDs split into groups), so they are kept
only in shapes that carry technique, never on their own:

- a number with a unit attached (``5mm``, ``2.5MM``, ``120kV``, ``50%``) or a b-value (``b1000``);
  up to 4 digits, one optional decimal part;
- a bare number of up to 3 digits only when a unit token follows it (``5 MM``) or a counter word
  precedes it (``SERIES 3``, ``PHASE 2``), and only when it is not part of a run of bare numbers;
- never a token made only of numbers joined by ``/ - . :`` (``03/17/24``, ``06.12.34``, ``10:30``),
  and never a number inside a joined token (``C1-884``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

VOCABULARY_FILE = "radiology_vocabulary.txt"
_PARTS = re.compile(r"[-/_+,:;]")
_UNITS = (
    "MM",
    "CM",
    "ML",
    "MG",
    "MGY",
    "GY",
    "CGY",
    "MSV",
    "KV",
    "KVP",
    "KEV",
    "MEV",
    "MAS",
    "MA",
    "MS",
    "SEC",
    "MIN",
    "MBQ",
    "GBQ",
    "MCI",
    "HU",
    "%",
)
_UNIT_TOKENS = frozenset(_UNITS)
_WITH_UNIT = re.compile(r"^\d{1,4}(?:\.\d{1,3})?(?:" + "|".join(_UNITS) + r"|S|H|T|X)$")
_B_VALUE = re.compile(r"^B\d{1,4}$")
_BARE = re.compile(r"^\d{1,3}(?:\.\d{1,3})?$")
#: Words after which a short bare number is a count or an index, not an identifier.
_COUNTERS = frozenset(
    {
        "SERIES",
        "PHASE",
        "SLICE",
        "SLICES",
        "VIEW",
        "VIEWS",
        "IMAGE",
        "IMAGES",
        "SCAN",
        "ECHO",
        "STAGE",
        "SEGMENT",
        "BED",
        "RUN",
        "PASS",
        "FRAME",
        "FRAMES",
        "SE",
        "SER",
    }
)
_TRIM = "()[]{}.,;:'\"*#!?"


@lru_cache(maxsize=4)
def load_vocabulary(path: Path | None = None) -> frozenset[str]:
    """The allow-listed tokens (upper case), from the shipped file or ``path``."""
    if path is None:
        text = (resources.files("site_node.deid.data") / VOCABULARY_FILE).read_text()
    else:
        text = Path(path).read_text()
    words: set[str] = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        words.update(token.upper() for token in line.split())
    return frozenset(words)


def _word(norm: str, vocab: frozenset[str]) -> bool:
    """A token kept on its own: a vocabulary word, a number with its unit, a b-value."""
    return norm in vocab or bool(_WITH_UNIT.match(norm) or _B_VALUE.match(norm))


def _allowed(norm: str, vocab: frozenset[str]) -> bool:
    if not norm:
        return False
    if _word(norm, vocab):
        return True
    parts = [p for p in _PARTS.split(norm) if p]
    return len(parts) > 1 and all(_word(p, vocab) for p in parts)


def _bare_numbers_kept(norms: list[str]) -> set[int]:
    """Indexes of the bare numbers that stand next to a unit or after a counter word, alone."""
    kept: set[int] = set()
    for i, norm in enumerate(norms):
        if not _BARE.match(norm):
            continue
        before = norms[i - 1] if i > 0 else ""
        after = norms[i + 1] if i + 1 < len(norms) else ""
        if _BARE.match(before) or _BARE.match(after):
            continue  # a run of numbers: a date, a phone number or a split identifier
        if after in _UNIT_TOKENS or before in _COUNTERS:
            kept.add(i)
    return kept


@lru_cache(maxsize=16384)  # descriptions repeat in every image of a series
def clean_text(value: str, vocab: frozenset[str]) -> str:
    """Keep the allow-listed tokens of ``value`` in their original order and spelling."""
    tokens = [token.strip(_TRIM) for token in value.split()]
    norms = [token.upper() for token in tokens]
    numbers = _bare_numbers_kept(norms)
    kept = []
    for i, (token, norm) in enumerate(zip(tokens, norms, strict=True)):
        if i in numbers or _allowed(norm, vocab):
            kept.append(token)
        elif norm in _UNIT_TOKENS and i - 1 in numbers:
            kept.append(token)
    return " ".join(kept)
