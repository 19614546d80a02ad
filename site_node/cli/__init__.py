"""``site-node``: the site admin's command line.

Commands live in one module per pipeline stage, each exposing ``register(app)``. Errors are
translated to messages and exit codes in exactly one place, :func:`main`.
"""

from __future__ import annotations

import typer

from common.cli import run_app

app = typer.Typer(
    name="site-node",
    help="Site node of the federated imaging platform: de-identify, harmonize, curate, publish, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


from site_node.cli import (  # noqa: E402
    access,
    admin,
    clinical,
    deid,
    key,
    models,
    pacs,
    publish,
    quarantine,
    synth,
    training,
)

# Every command group is registered here, by name: a broken import fails loudly instead of
# hiding a command.
for _module in (admin, key, synth, deid, clinical, quarantine, publish, training, pacs, access, models):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning platform errors into a message and an exit code."""
    run_app(
        app,
        argv,
        debug_env="SITE_NODE_DEBUG",
        crash_hint="Ingest commands are journaled: rerunning resumes where this run stopped.",
    )
