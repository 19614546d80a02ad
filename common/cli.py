"""Running a typer app as a platform entry point: one place that turns errors into exit codes.

Both ``site-node`` and ``central-hub`` call :func:`run_app`. Platform errors print their public
message (with the field they are about) and exit with their code; unexpected errors print only
their type and where they happened, because an exception message can quote data and data may be
PHI (set ``<PREFIX>_DEBUG=1`` on a test system to see the traceback).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import typer

from common.errors import PlatformError
from common.logging import configure_logging

#: Exit status of an unexpected internal error (EX_SOFTWARE).
EX_SOFTWARE = 70
#: Files and folders the CLIs create are the owner's only (databases, exports, logs, backups).
CLI_UMASK = 0o077


def run_app(app: typer.Typer, argv: list[str] | None, *, debug_env: str, crash_hint: str = "") -> None:
    """Run ``app`` and exit with the right status.

    Args:
        app: the typer application.
        argv: arguments (``None``: ``sys.argv``).
        debug_env: environment variable that, set to 1, prints full tracebacks of unexpected errors.
        crash_hint: one sentence appended to the message of an unexpected error.

    Raises:
        SystemExit: with the command's exit status, whenever it is not 0.
    """
    configure_logging("WARNING")
    previous_umask = os.umask(CLI_UMASK)
    try:
        code = app(args=argv, standalone_mode=False)
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
    except Exception as exc:
        if _is_usage_error(exc):  # bad arguments: click/typer print their own usage message
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
        # a bug: report where, never what
        _report_crash(exc, debug_env, crash_hint)
        raise SystemExit(EX_SOFTWARE) from None
    finally:
        os.umask(previous_umask)  # only matters when called in-process (tests)
    # click returns typer.Exit codes instead of raising when not in standalone mode
    if isinstance(code, int) and code != 0:
        raise SystemExit(code)


def _is_usage_error(exc: BaseException) -> bool:
    """Click's and typer's vendored click's ClickException (usage errors, bad parameters)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__) and hasattr(exc, "show")


def _report_crash(exc: BaseException, debug_env: str, hint: str) -> None:
    if os.environ.get(debug_env) == "1":
        traceback.print_exception(exc)
        return
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "unknown"
    message = (
        f"internal error: {type(exc).__name__} at {where} (details withheld: they may contain "
        f"patient data; rerun with {debug_env}=1 on a test system)."
    )
    typer.echo(f"{message} {hint}".rstrip(), err=True)
