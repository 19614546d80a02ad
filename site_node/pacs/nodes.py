"""PACS nodes known to the site: ``pacs add / list / remove``, and their DICOMweb credentials.

A node is stored in the site database with where its secrets are (an environment variable or a file
readable only by the site's user), never the secret itself: a secret passed as a command-line argument
would sit in the shell history and in ``ps`` output.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from common.errors import ConfigError, ConflictError, InputError, NotFoundError
from site_node.db import utcnow
from site_node.pacs.tables import pacs_node

AUTH_KINDS = ("none", "basic", "bearer", "cert")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_AET = re.compile(r"^[ -\[\]-~]{1,16}$")  # printable ASCII without backslash


@dataclass
class PacsNode:
    """A PACS (or VNA, or Orthanc) the site queries and retrieves from.

    Attributes:
        name: the site admin's name for it.
        aet: its AE title.
        host: host name or address of its DICOM port.
        port: its DICOM port.
        dicomweb_url: root of its DICOMweb services (QIDO-RS, WADO-RS), if any.
        auth: how to authenticate to DICOMweb: ``kind`` plus where each secret is.
    """

    name: str
    aet: str
    host: str
    port: int
    dicomweb_url: str | None = None
    auth: dict[str, str] = field(default_factory=lambda: {"kind": "none"})

    def to_dict(self) -> dict[str, Any]:
        """Public form (secret locations only, never secrets)."""
        return {
            "name": self.name,
            "aet": self.aet,
            "host": self.host,
            "port": self.port,
            "dicomweb_url": self.dicomweb_url,
            "auth": dict(self.auth),
        }


def validate_aet(value: str, field_name: str = "aet") -> str:
    """An AE title: 1-16 printable ASCII characters, no backslash, not only spaces.

    Raises:
        InputError: the title is not valid.
    """
    if not _AET.match(value) or not value.strip():
        raise InputError("an AE title is 1-16 printable ASCII characters without backslash", field=field_name)
    return value.strip()


def build_auth(
    kind: str,
    username: str | None = None,
    password_env: str | None = None,
    password_file: Path | None = None,
    token_env: str | None = None,
    token_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    ca_file: Path | None = None,
) -> dict[str, str]:
    """The ``auth`` record of a node, checked for completeness (secrets are not read here).

    Args:
        kind: none, basic, bearer or cert.
        username: basic auth user name.
        password_env: environment variable holding the basic auth password.
        password_file: file holding the basic auth password.
        token_env: environment variable holding the bearer token.
        token_file: file holding the bearer token.
        cert_file: client certificate (PEM) for mutual TLS.
        key_file: its private key (PEM).
        ca_file: CA bundle to verify the server with (default: the system's).

    Raises:
        InputError: a required part is missing or the kind is unknown.
    """
    if kind not in AUTH_KINDS:
        raise InputError(f"auth must be one of {', '.join(AUTH_KINDS)}", field="auth")
    auth: dict[str, str] = {"kind": kind}
    if kind == "basic":
        if not username or bool(password_env) == bool(password_file):
            raise InputError(
                "basic auth needs --username and exactly one of --password-env / --password-file",
                field="auth",
            )
        auth["username"] = username
    if kind == "bearer" and bool(token_env) == bool(token_file):
        raise InputError("bearer auth needs exactly one of --token-env / --token-file", field="auth")
    if kind == "cert" and not (cert_file and key_file):
        raise InputError("certificate auth needs --cert and --key", field="auth")
    for key, value in (
        ("password_env", password_env),
        ("password_file", password_file),
        ("token_env", token_env),
        ("token_file", token_file),
        ("cert_file", cert_file),
        ("key_file", key_file),
        ("ca_file", ca_file),
    ):
        if value:
            auth[key] = str(Path(value).expanduser().resolve()) if isinstance(value, Path) else value
    return auth


def read_secret(auth: dict[str, str], env_key: str, file_key: str, what: str) -> str:
    """Read a secret from the environment variable or the private file named in ``auth``.

    Raises:
        ConfigError: the variable is unset, or the file is missing, empty or readable by others.
    """
    if auth.get(env_key):
        value = os.environ.get(auth[env_key], "")
        if not value:
            raise ConfigError(f"the environment variable holding the {what} is not set", field=env_key)
        return value
    path = Path(auth.get(file_key, ""))
    try:
        mode = path.stat().st_mode
    except OSError:
        raise ConfigError(f"the file holding the {what} cannot be read", field=file_key) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the file holding the {what} is readable by others; chmod 600 it", field=file_key)
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"the file holding the {what} is empty", field=file_key)
    return value


def add_node(engine: Engine, node: PacsNode) -> None:
    """Store a new node.

    Raises:
        InputError: invalid name, AE title or port.
        ConflictError: a node of that name exists.
    """
    if not _NAME.match(node.name):
        raise InputError("a node name is letters, digits, '_', '.', '-' (max 64)", field="NAME")
    node.aet = validate_aet(node.aet)
    if not 1 <= node.port <= 65535:
        raise InputError("port must be 1-65535", field="port")
    if node.dicomweb_url and not re.match(r"^https?://", node.dicomweb_url):
        raise InputError("the DICOMweb URL must start with http:// or https://", field="dicomweb")
    with engine.begin() as conn:
        if conn.execute(select(pacs_node.c.name).where(pacs_node.c.name == node.name)).first():
            raise ConflictError("a PACS node of that name exists; remove it first", field="NAME")
        conn.execute(
            insert(pacs_node).values(
                name=node.name,
                aet=node.aet,
                host=node.host,
                port=node.port,
                dicomweb_url=node.dicomweb_url,
                auth=node.auth,
                created_at=utcnow(),
            )
        )


def _node(row: Any) -> PacsNode:
    return PacsNode(row.name, row.aet, row.host, row.port, row.dicomweb_url, dict(row.auth or {}))


def list_nodes(engine: Engine) -> list[PacsNode]:
    """Every node, by name."""
    with engine.connect() as conn:
        return [_node(r) for r in conn.execute(select(pacs_node).order_by(pacs_node.c.name))]


def get_node(engine: Engine, name: str) -> PacsNode:
    """One node by name.

    Raises:
        NotFoundError: no such node.
    """
    with engine.connect() as conn:
        row = conn.execute(select(pacs_node).where(pacs_node.c.name == name)).first()
    if row is None:
        raise NotFoundError("no PACS node of that name; see 'site-node pacs list'", field="NAME")
    return _node(row)


def remove_node(engine: Engine, name: str) -> None:
    """Forget a node (its pull journal stays: it records what was already de-identified).

    Raises:
        NotFoundError: no such node.
    """
    with engine.begin() as conn:
        if not conn.execute(delete(pacs_node).where(pacs_node.c.name == name)).rowcount:
            raise NotFoundError("no PACS node of that name; see 'site-node pacs list'", field="NAME")


def node_aets(engine: Engine) -> list[str]:
    """AE titles of every added node (they may send studies to ``pacs listen``)."""
    return [n.aet for n in list_nodes(engine)]
