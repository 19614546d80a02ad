"""Wait until an NVFlare server's ports accept connections, or until an HTTP URL answers 200.

Used by ``start-hub.sh`` (``python -m infra.deploy.wait_ports --kit KIT`` / ``--url URL``) and by the
deployment test. Every wait is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from common.errors import ConfigError


def server_endpoints(kit: Path) -> list[tuple[str, int]]:
    """The (host, port) pairs an NVFlare server kit listens on: the FL port and the admin port.

    Raises:
        ConfigError: ``kit`` is not a server startup kit.
    """
    path = kit / "startup" / "fed_server.json"
    if not path.is_file():
        raise ConfigError("not an NVFlare server startup kit", field="kit")
    server = json.loads(path.read_text())["servers"][0]
    host, _, port = server["service"]["target"].rpartition(":")
    endpoints = [(host, int(port))]
    admin = int(server.get("admin_port") or port)
    if admin != int(port):
        endpoints.append((server.get("admin_server") or host, admin))
    return endpoints


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once ``host:port`` accepts a TCP connection, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def wait_for_url(url: str, timeout: float) -> bool:
    """True once ``url`` answers HTTP 200, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as reply:  # noqa: S310 - http(s) URL from the operator
                if reply.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 0 when ready, 1 on timeout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kit", type=Path, help="NVFlare server startup kit folder")
    parser.add_argument("--url", help="HTTP URL that must answer 200")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    if args.kit is not None:
        for host, port in server_endpoints(args.kit):
            if not wait_for_port(host, port, max(0.0, deadline - time.monotonic())):
                return 1
    if args.url and not wait_for_url(args.url, max(0.0, deadline - time.monotonic())):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
