"""Private stores (issue 12): ``site.db`` and ``hub.db`` are 0600, and both CLIs run with umask 077."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_site_cli as _run

REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SITE_NODE_", "HUB_"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def _permissive(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a console script from a shell whose umask is 022 (the usual default)."""
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run(
        ["/bin/sh", "-c", 'umask 022 && exec "$@"', "sh", str(exe), *args[1:]],
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_site_cli_makes_private_files_under_a_permissive_umask(tmp_path: Path) -> None:
    home = tmp_path / "site"
    result = _permissive(["site-node", "init", "--home", str(home), "--site-id", "s1"])
    assert result.returncode == 0, result.stderr
    assert _mode(home / "site.db") == 0o600
    assert _mode(home / "site.toml") == 0o600 and _mode(home / "export") == 0o700
    for companion in (home / "site.db-wal", home / "site.db-shm"):
        if companion.exists():  # SQLite gives them the main file's mode
            assert _mode(companion) & 0o077 == 0, companion
    assert all(_mode(p) & 0o077 == 0 for p in home.rglob("*")), [
        (str(p), oct(_mode(p))) for p in home.rglob("*") if _mode(p) & 0o077
    ]


def test_hub_cli_makes_hub_db_private_under_a_permissive_umask(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    result = _permissive(["central-hub", "init", "--home", str(home)])
    assert result.returncode == 0, result.stderr
    assert _mode(home / "hub.db") == 0o600 and _mode(home / "hub.toml") == 0o600


def test_existing_world_readable_site_db_is_tightened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "site"
    assert _run(["init", "--home", str(home)], capsys)[0] == 0
    os.chmod(home / "site.db", 0o644)  # made by an earlier release
    from site_node.db import get_engine

    get_engine.cache_clear()  # a new process would create a new engine
    assert _run(["status", "--home", str(home), "--json"], capsys)[0] == 0
    assert _mode(home / "site.db") == 0o600


def test_sqlite_database_created_by_the_library_is_private(tmp_path: Path) -> None:
    """Created 0600 whatever the umask, also outside the CLIs (the hub app, tests, benchmarks)."""
    from common.database import create_platform_engine

    old = os.umask(0o022)
    try:
        engine = create_platform_engine(f"sqlite:///{tmp_path / 'any.db'}")
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        engine.dispose()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "any.db") == 0o600


def test_in_process_cli_restores_the_callers_umask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = os.umask(0o022)
    try:
        assert _run(["init", "--home", str(tmp_path / "s")], capsys)[0] == 0
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)
