"""Standard code meanings: a CodeMeaning is rewritten from the code, never copied from the file.

A code sequence item carries the code (kept: it is a coded value) and a meaning, which is free text a
local system may have filled with anything. For codes of the standard schemes (DCM, SCT, LN, UCUM,
NCIt, RADLEX ...; ``data/standard_code_meanings.txt``) the meaning is taken from that table; any
other meaning goes through Clean Descriptors.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

MEANINGS_FILE = "standard_code_meanings.txt"


@lru_cache(maxsize=1)
def _standard_meanings() -> dict[tuple[str, str], str]:
    text = (resources.files("site_node.deid.data") / MEANINGS_FILE).read_text(encoding="utf-8")
    table: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        scheme, code, meaning = line.split("\t", 2)
        table[(scheme, code)] = meaning
    return table


def standard_meaning(scheme: str, code: str) -> str | None:
    """The PS3.16 meaning of ``code`` in ``scheme`` (``SRT`` read as ``SCT``), None when unknown."""
    if not scheme or not code:
        return None
    table = _standard_meanings()
    found = table.get((scheme, code))
    if found is None and scheme == "SRT":
        found = table.get(("SCT", code))
    return found
