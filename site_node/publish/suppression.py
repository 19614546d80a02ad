"""Small-cell suppression of one site's counts: the rules live in :mod:`common.suppression`.

The hub checks published summaries with the very same functions, so there is one copy of the rule.
"""

from __future__ import annotations

from common.suppression import below_marker, derivable, suppress_row, suppress_value

__all__ = ["below_marker", "derivable", "suppress_row", "suppress_value"]
