"""``site-node``: the site admin's command line.

Commands live in one module per pipeline stage, each exposing ``register(app)``. Errors are
translated to messages and exit codes in exactly one place, :func:`main`.
"""

from __future__ import annotations

import json
import sys

import typer

from common.errors import PlatformError
from common.logging import configure_logging

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
    configure_logging("WARNING")
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code != 0:  # click returns typer.Exit codes when not standalone
            raise SystemExit(code)
    except PlatformError as exc:
        if "--json" in (argv if argv is not None else sys.argv):
            typer.echo(json.dumps(exc.to_dict()), err=True)
        else:
            where = f" [{exc.field}]" if exc.field else ""
            typer.echo(f"error{where}: {exc.public_message}", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        _report_crash(exc)
        raise SystemExit(70) from None


def _report_crash(exc: BaseException) -> None:
    """An unexpected error: print its type and where it happened, never its message or values.

    Exception messages (database errors, parser errors) can quote data, and data may be PHI, so the
    full traceback is not printed. Set SITE_NODE_DEBUG=1 on a test system to see it.
    """
    import os
    import traceback

    if os.environ.get("SITE_NODE_DEBUG") == "1":
        traceback.print_exception(exc)
        return
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "unknown"
    typer.echo(f"internal error: {type(exc).__name__} at {where} (details withheld: they may contain "
               "patient data; rerun with SITE_NODE_DEBUG=1 on a test system). Ingest commands are "
               "journaled: rerunning resumes where this run stopped.", err=True)
