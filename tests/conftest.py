"""Suite-wide fixtures: a fixed test key, fresh site homes, PostgreSQL when reachable."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

#: The fixed key of the known-answer tests (bytes 0..31). Never a real site's key.
TEST_KEY = bytes(range(32))


def postgres_reachable(host: str = "127.0.0.1", port: int = 5432) -> bool:
    """True when something listens on the PostgreSQL port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def site_home(tmp_path: Path) -> Path:
    """An initialised site home with a fresh random key."""
    from site_node.home import init_home

    home = tmp_path / "site-a"
    init_home(home, "site-a")
    return home


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never pick up a developer's SITE_NODE_HOME / HUB_HOME, and NVFlare writes under tmp."""
    for name in list(os.environ):
        if name.startswith(("SITE_NODE_", "HUB_")):
            monkeypatch.delenv(name, raising=False)


def fresh_postgres_database() -> Iterator[str]:
    """Create a uniquely named PostgreSQL database, yield its URL, drop it afterwards.

    Skips the calling test when the server is unreachable or refuses to create a database.
    """
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    name = f"fedimaging_test_{uuid.uuid4().hex[:12]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # server up but refusing: skip rather than fail unrelated tests
        admin.dispose()
        pytest.skip(f"cannot create a PostgreSQL test database ({type(exc).__name__})")
    try:
        yield url
    finally:
        from site_node.db import get_engine

        get_engine(url).dispose()
        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, dropped afterwards; skips when unreachable."""
    yield from fresh_postgres_database()


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test alone (a site and a hub each keep their own alembic_version)."""
    yield from fresh_postgres_database()


def run_site_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Call ``site-node ARGS`` in-process as a user would; return (exit code, stdout, stderr)."""
    from site_node.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
