"""Clean Descriptors: keep only tokens from the shipped radiology vocabulary, drop everything else.

``'CT CHEST W CONTRAST follow-up for John Smith' -> 'CT CHEST W CONTRAST follow-up'``. Tokens are
split on white space; a token is kept when its upper-cased form (trimmed of surrounding punctuation)
is in the vocabulary, when every part of it split on ``- / _ + ,`` is, or when it is a short number or
a number with a unit. Kept tokens keep their original spelling.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

VOCABULARY_FILE = "radiology_vocabulary.txt"
_PARTS = re.compile(r"[-/_+,:;]")
_NUMBER = re.compile(r"^\d{1,3}(?:\.\d{1,3})?(?:MM|CM|M|MG|ML|KV|KEV|MAS|MA|S|MS|T|MIN|H|%|X|D)?$")
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


def _allowed(token: str, vocab: frozenset[str]) -> bool:
    norm = token.strip(_TRIM).upper()
    if not norm:
        return False
    if norm in vocab or _NUMBER.match(norm):
        return True
    parts = [p for p in _PARTS.split(norm) if p]
    return bool(parts) and all(p in vocab or _NUMBER.match(p) for p in parts)


def clean_text(value: str, vocab: frozenset[str]) -> str:
    """Keep the allow-listed tokens of ``value`` in their original order and spelling."""
    kept = [token.strip(_TRIM) for token in value.split() if _allowed(token, vocab)]
    return " ".join(kept)
