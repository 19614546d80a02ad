"""`common.cli.run_app`: one translation of errors to exit codes for both CLIs; crashes leak nothing."""

from __future__ import annotations

import pytest
import typer

from common.cli import EX_SOFTWARE, run_app
from common.errors import InputError

app = typer.Typer()
SECRET = "Smith^John MRN-4477120"


@app.command()
def ok() -> None:
    typer.echo("fine")


@app.command()
def bad() -> None:
    raise InputError("the value of PatientID is malformed", field="PatientID")


@app.command()
def crash() -> None:
    raise RuntimeError(f"database said: duplicate key ({SECRET})")


@app.command()
def unhealthy() -> None:
    raise typer.Exit(3)


def _run(args: list[str]) -> int:
    try:
        run_app(app, args, debug_env="TEST_DEBUG")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_success_returns_normally(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["ok"]) == 0 and "fine" in capsys.readouterr().out


def test_platform_error_names_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["bad"]) == 65
    assert "[PatientID]" in capsys.readouterr().err


def test_crash_prints_type_and_place_but_never_the_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_DEBUG", raising=False)
    assert _run(["crash"]) == EX_SOFTWARE
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "test_cli_runner.py" in err
    assert "Smith" not in err and "MRN-4477120" not in err


def test_exit_codes_propagate() -> None:
    assert _run(["unhealthy"]) == 3
    assert _run(["no-such-command"]) == 2
