"""Creating and opening the hub's home folder (``hub.toml`` + the SQLite database by default)."""

from __future__ import annotations

import json
from pathlib import Path

from central_hub.db import upgrade_database
from common.config import HUB_TOML, HubSettings, load_hub_settings, resolve_home
from common.errors import ConfigError


def init_hub(home: Path | str | None, db_url: str | None = None) -> HubSettings:
    """Create the hub home (``hub.toml``) and create or upgrade its database.

    Re-running keeps the existing settings and only upgrades the schema.

    Args:
        home: the folder (``$HUB_HOME`` when None).
        db_url: SQLAlchemy URL (PostgreSQL in production); SQLite in the home by default.
    """
    path = resolve_home(home, "HUB_HOME")
    path.mkdir(parents=True, exist_ok=True)
    toml_path = path / HUB_TOML
    if not toml_path.exists():
        lines = ["# Central hub settings; see README 'Hub settings'."]
        if db_url:
            lines.append(f"db_url = {json.dumps(db_url)}")
        toml_path.write_text("\n".join(lines) + "\n")
    settings = load_hub_settings(path, **({"db_url": db_url} if db_url else {}))
    upgrade_database(settings.database_url)
    return settings


def open_hub(home: Path | str | None = None, *, upgrade: bool = True) -> HubSettings:
    """Load an initialised hub home's settings (and upgrade its schema).

    Raises:
        ConfigError: the home was never initialised.
    """
    settings = load_hub_settings(home)
    if not (settings.home / HUB_TOML).exists():
        raise ConfigError("hub home is not initialised; run 'central-hub init'", field="home")
    if upgrade:
        upgrade_database(settings.database_url)
    return settings
