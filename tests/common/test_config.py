"""Settings: TOML + environment, validation errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import load_hub_settings, load_site_settings, resolve_home
from common.errors import ConfigError


def _write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "site.toml").write_text(text)


def test_defaults_and_home_created(tmp_path: Path) -> None:
    settings = load_site_settings(tmp_path / "new-home")
    assert settings.home.is_dir()
    assert settings.floor_k == 10
    assert settings.database_url.startswith("sqlite:///")
    assert settings.deid.clean_descriptors and settings.deid.retain_longitudinal_modified_dates


def test_toml_values_loaded(tmp_path: Path) -> None:
    _write(tmp_path, 'site_id = "uh-x"\nfloor_k = 12\n[deid]\nretain_device_identity = false\n')
    settings = load_site_settings(tmp_path)
    assert (settings.site_id, settings.floor_k, settings.deid.retain_device_identity) == ("uh-x", 12, False)


def test_environment_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "floor_k = 12\n")
    monkeypatch.setenv("SITE_NODE_FLOOR_K", "20")
    assert load_site_settings(tmp_path).floor_k == 20


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITE_NODE_HOME", str(tmp_path))
    assert load_site_settings().home == tmp_path.resolve()


def test_missing_home_is_clear_error() -> None:
    with pytest.raises(ConfigError, match="SITE_NODE_HOME") as info:
        resolve_home(None, "SITE_NODE_HOME")
    assert info.value.field == "home"


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("floor_k = 3\n", "floor_k"),
        ('site_id = "Bad Site!"\n', "site_id"),
        ('hub_token = "changeme"\n', "hub_token"),
        ('hub_token = "short"\n', "hub_token"),
        ("unknown_setting = 1\n", "unknown_setting"),
        ("[deid]\nretain_longitudinal_full_dates = true\n", "deid"),
    ],
)
def test_invalid_settings_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    _write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_site_settings(tmp_path)
    assert info.value.field == field
    assert info.value.exit_code == 78


def test_secret_value_never_in_error(tmp_path: Path) -> None:
    _write(tmp_path, 'hub_token = "tooshort-secret"\n')
    with pytest.raises(ConfigError) as info:
        load_site_settings(tmp_path)
    assert "tooshort-secret" not in str(info.value)


def test_long_random_secret_accepted(tmp_path: Path) -> None:
    _write(tmp_path, 'hub_token = "' + "a1B2c3D4" * 5 + '"\n')
    assert load_site_settings(tmp_path).hub_token is not None


def test_hub_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PORT", "9090")
    settings = load_hub_settings(tmp_path)
    assert settings.port == 9090 and settings.database_url.endswith("hub.db")
    monkeypatch.setenv("HUB_PORT", "0")
    with pytest.raises(ConfigError) as info:
        load_hub_settings(tmp_path)
    assert info.value.field == "port"
