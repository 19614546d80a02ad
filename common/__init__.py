"""Code shared by the site node and the hub: config, errors, logging, crypto, cross-boundary schemas."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fedimaging")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"
