"""Options shared by every ``site-node`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="SITE_NODE_HOME", help="Site node home folder (or $SITE_NODE_HOME)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def emit_json(payload: Any) -> None:
    """Print ``payload`` as one JSON line on stdout."""
    typer.echo(json.dumps(payload, default=str, sort_keys=True))
