"""Which site home a training client is bound to.

In production each site's NVFlare client runs with ``SITE_NODE_HOME`` set. The local simulator runs
every client on one machine, so the runner writes a map ``client name -> site home`` to a file named
by ``FEDIMAGING_SITE_MAP``; a client resolves only its own entry and never falls back to another's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from common.errors import ConfigError

SITE_MAP_ENV = "FEDIMAGING_SITE_MAP"


def write_site_map(path: Path, homes: dict[str, Path]) -> Path:
    """Write the simulator's client -> home map (absolute paths)."""
    path.write_text(json.dumps({name: str(Path(home).resolve()) for name, home in homes.items()}, indent=2))
    return path


def resolve_site_home(client_name: str) -> Path:
    """The home folder of ``client_name`` and of no other site.

    Raises:
        ConfigError: no binding for this client.
    """
    map_file = os.environ.get(SITE_MAP_ENV)
    if map_file:
        mapping = json.loads(Path(map_file).read_text())
        if client_name not in mapping:
            raise ConfigError(f"no site home bound to client {client_name}", field=SITE_MAP_ENV)
        return Path(mapping[client_name])
    home = os.environ.get("SITE_NODE_HOME")
    if not home:
        raise ConfigError("the training client has no site home: set SITE_NODE_HOME", field="SITE_NODE_HOME")
    return Path(home)
