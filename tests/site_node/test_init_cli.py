"""`site-node init` through the CLI, as a site admin calls it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_site_cli as _run


def test_init_creates_home_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    code, out, _ = _run(["init", "--home", str(home), "--site-id", "uh-a", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["site_id"] == "uh-a"
    for name in ("site.toml", "phi/site.key", "export", "quarantine", "site.db"):
        assert (home / name).exists(), name
    assert (home / "phi").stat().st_mode & 0o777 == 0o700
    assert (home / "quarantine").stat().st_mode & 0o777 == 0o700  # raw inputs set aside
    assert (home / "phi" / "site.key").stat().st_mode & 0o777 == 0o600


def test_init_is_idempotent_and_keeps_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    _run(["init", "--home", str(home), "--site-id", "uh-a"], capsys)
    key = (home / "phi" / "site.key").read_bytes()
    code, _, _ = _run(["init", "--home", str(home), "--site-id", "uh-a"], capsys)
    assert code == 0 and (home / "phi" / "site.key").read_bytes() == key


def test_init_refuses_other_site_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    _run(["init", "--home", str(home), "--site-id", "uh-a"], capsys)
    code, _, err = _run(["init", "--home", str(home), "--site-id", "uh-b"], capsys)
    assert code == 78 and "site_id" in err


def test_home_from_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SITE_NODE_HOME", str(tmp_path / "env-home"))
    code, _, _ = _run(["init", "--site-id", "uh-e"], capsys)
    assert code == 0 and (tmp_path / "env-home" / "site.toml").exists()


def test_no_home_is_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["init", "--site-id", "x"], capsys)
    assert code == 78 and "SITE_NODE_HOME" in err


def test_invalid_floor_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["init", "--home", str(tmp_path / "h"), "--floor-k", "2"], capsys)
    assert code == 78 and "floor_k" in err


def test_console_script_installed(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "site-node"
    result = subprocess.run(
        [str(exe), "init", "--home", str(tmp_path / "c"), "--site-id", "c1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "initialised site 'c1'" in result.stdout
