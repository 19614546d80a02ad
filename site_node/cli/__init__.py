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


def _register_all() -> None:
    from site_node.cli import admin

    admin.register(app)
    for name in ("synth", "deid", "clinical", "publish", "training"):
        try:
            module = __import__(f"site_node.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            # a stage module not present in this build; anything else is a real error
            if exc.name != f"site_node.cli.{name}":
                raise
            continue
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning platform errors into a message and an exit code."""
    run_app(
        app,
        argv,
        debug_env="SITE_NODE_DEBUG",
        crash_hint="Ingest commands are journaled: rerunning resumes where this run stopped.",
    )
