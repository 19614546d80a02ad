"""Engine creation shared by the site and hub databases (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_platform_engine(url: str, **pool_options: Any) -> Engine:
    """An engine for ``url``: SQLite gets foreign keys, WAL and a busy timeout; others a pre-ping pool.

    SQL parameters are hidden from error messages everywhere: a database error must never print
    row values (they may be PHI) in a traceback or log.

    Args:
        url: SQLAlchemy URL.
        **pool_options: extra ``create_engine`` options for server databases (pool sizes).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, hide_parameters=True, pool_pre_ping=True, **pool_options)
