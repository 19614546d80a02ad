"""Logging set-up for entry points, and the PHI safety-net filter.

Library modules only call ``logging.getLogger(__name__)``; handlers are configured by
:func:`configure_logging`, called from the CLIs and servers. The :class:`PHIFilter` drops any
record whose rendered text contains a value registered as PHI. It is a safety net: the main
defence is never to log identifiers at all.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable

_MIN_PHI_LEN = 3


class PHIRegistry:
    """A thread-safe set of strings that must never appear in a log record."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, values: Iterable[str | None]) -> None:
        """Add values (short or empty ones are ignored: they would match everything)."""
        with self._lock:
            for value in values:
                if value is not None and len(str(value).strip()) >= _MIN_PHI_LEN:
                    self._values.add(str(value).strip())

    def clear(self) -> None:
        """Forget every registered value."""
        with self._lock:
            self._values.clear()

    def contains_phi(self, text: str) -> bool:
        """Return True when ``text`` contains any registered value."""
        with self._lock:
            values = tuple(self._values)
        return any(v in text for v in values)


PHI_REGISTRY = PHIRegistry()


class PHIFilter(logging.Filter):
    """Drop records that carry a registered PHI value (message, args or exception text)."""

    def __init__(self, registry: PHIRegistry = PHI_REGISTRY) -> None:
        super().__init__()
        self.registry = registry
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging API name
        try:
            text = record.getMessage()
        except Exception:  # a broken format string must not crash logging
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + str(record.exc_info[1])
        if self.registry.contains_phi(text):
            self.dropped += 1
            return False
        return True


def configure_logging(level: str | int = "INFO", *, stream: object = None) -> logging.Handler:
    """Install one stderr handler with the PHI filter on the root logger.

    Args:
        level: log level name or number.
        stream: stream to write to (defaults to stderr).

    Returns:
        The installed handler (tests use it to inspect the filter).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_platform_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PHIFilter())
    handler._platform_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler
