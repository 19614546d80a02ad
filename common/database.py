"""Engine creation shared by the site and hub databases (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def private_sqlite_file(url: str) -> Path | None:
    """Make the SQLite file of ``url`` private: created 0600 when missing, tightened to 0600 if looser.

    SQLite creates its ``-wal`` and ``-shm`` companions with the main file's mode, so they follow.
    Returns the file's path (None for in-memory and non-SQLite URLs).
    """
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:"):  # URI filenames: leave to the caller
        return None
    path = Path(parsed.database)
    if path.parent.is_dir():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    return path


def create_platform_engine(url: str, **pool_options: Any) -> Engine:
    """An engine for ``url``: SQLite gets foreign keys, WAL and a busy timeout; others a pre-ping pool.

    SQL parameters are hidden from error messages everywhere: a database error must never print
    row values (they may be PHI) in a traceback or log.

    Args:
        url: SQLAlchemy URL.
        **pool_options: extra ``create_engine`` options for server databases (pool sizes).
    """
    if url.startswith("sqlite"):
        private_sqlite_file(url)  # site.db / hub.db hold pseudonymized data and tokens: owner only
        engine = create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, hide_parameters=True, pool_pre_ping=True, **pool_options)
