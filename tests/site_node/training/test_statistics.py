"""The fedstats site generator: values from the curated set, the site floor, the approval check."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from site_node.home import init_home
from site_node.training.approval import approve_template
from site_node.training.site import SITE_MAP_ENV, write_site_map
from site_node.training.statistics import SiteStatistics, curated_features
from site_node.training.toy_data import write_toy_curated

FEDSTATS = Path(__file__).resolve().parents[3] / "jobs" / "fedstats"


def _ctx(name: str, custom: Path) -> SimpleNamespace:
    workspace = SimpleNamespace(get_app_custom_dir=lambda job_id: str(custom))
    return SimpleNamespace(
        get_identity_name=lambda: name,
        get_job_id=lambda: "job-1",
        get_engine=lambda: SimpleNamespace(get_workspace=lambda: workspace),
    )


@pytest.fixture
def bound_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    home = tmp_path / "site-a"
    init_home(home, "site-a", floor_k=5)
    write_toy_curated(home, patients=6, seed=4, shape=(16, 16, 16))
    monkeypatch.setenv(SITE_MAP_ENV, str(write_site_map(tmp_path / "map.json", {"site-a": home})))
    return home, _export(tmp_path / "job", {})


def _export(work: Path, params: dict) -> Path:
    """The custom folder of a really exported fedstats job (its client config sits beside it)."""
    from central_hub.jobs.templates import load_template

    recipe = load_template("fedstats").build_recipe(["site-a"], params, work)
    recipe.export(str(work / "export"))
    return next((work / "export").rglob("fedimaging_job.json")).parent


def test_curated_features_have_one_value_per_series(tmp_path: Path) -> None:
    curated = write_toy_curated(tmp_path / "h", patients=3, seed=1, shape=(16, 16, 16))
    values = curated_features(curated)
    assert len(values["lesion_volume_ml"]) == 3 and all(v > 0 for v in values["lesion_volume_ml"])


def test_generator_reports_only_datasets_above_the_floor(bound_site: tuple[Path, Path]) -> None:
    home, custom = bound_site
    approve_template(home, "fedstats", FEDSTATS)
    stats = SiteStatistics()
    stats.initialize(_ctx("site-a", custom))
    assert set(stats.features()) == {"curated"}  # no OMOP persons: the dataset is absent, not zero
    assert stats.count("curated", "mean_hu") == 6
    hist = stats.histogram("curated", "lesion_volume_ml", 4, 0.0, 10.0)
    assert sum(b.sample_count for b in hist.bins) == 6


def test_small_site_reports_nothing(bound_site: tuple[Path, Path]) -> None:
    home, custom = bound_site
    (home / "site.toml").write_text((home / "site.toml").read_text().replace("floor_k = 5", "floor_k = 20"))
    approve_template(home, "fedstats", FEDSTATS)
    stats = SiteStatistics()
    stats.initialize(_ctx("site-a", custom))
    assert stats.features() == {}


def _refused(custom: Path) -> str:
    """Initialise the generator; the refusal it notes for the site's result filter (it stays up)."""
    from site_node.training.job_policy import pending_refusal

    stats = SiteStatistics()
    stats.initialize(_ctx("site-a", custom))
    assert stats.features() == {}
    return pending_refusal("job-1") or ""


def test_unapproved_statistics_job_is_refused(bound_site: tuple[Path, Path]) -> None:
    _, custom = bound_site
    assert _refused(custom).startswith("refused by site site-a")
    shutil.rmtree(custom)


def _set_policy(home: Path, section: str, text: str) -> None:
    toml = home / "site.toml"
    toml.write_text(toml.read_text() + f"\n[job_policy.{section}]\n{text}\n")


def test_job_below_the_sites_noise_minimum_is_refused(bound_site: tuple[Path, Path]) -> None:
    """The hub accepts min_noise_level 0.1; this site asks for at least 0.2 and refuses at run time."""
    home, custom = bound_site
    approve_template(home, "fedstats", FEDSTATS)
    _set_policy(home, "fedstats", "min_noise_level = 0.2")
    assert (
        _refused(custom) == "refused by site site-a: min_noise_level outside the site's policy for fedstats"
    )


def test_cleansers_weakened_after_the_hub_are_refused(bound_site: tuple[Path, Path]) -> None:
    """Whatever the hub let through: the site reads the cleansers NVFlare will really run."""
    home, custom = bound_site
    approve_template(home, "fedstats", FEDSTATS)
    config = custom.parent / "config" / "config_fed_client.json"
    weak = config.read_text().replace('"max_bins_percent": 10.0', '"max_bins_percent": 1000000000.0')
    config.write_text(weak)
    refusal = _refused(custom)
    assert "max_bins_percent" in refusal and "1000000000" not in refusal
    no_cleanser = config.read_text().replace("MinCountCleanser", "Nothing")
    config.write_text(no_cleanser)
    assert "min_count" in _refused(custom)


def test_more_histogram_bins_than_the_site_allows_are_refused(bound_site: tuple[Path, Path]) -> None:
    from site_node.training.job_policy import pending_refusal

    home, custom = bound_site
    approve_template(home, "fedstats", FEDSTATS)
    _set_policy(home, "fedstats", "max_bins = 8")
    stats = SiteStatistics()
    stats.initialize(_ctx("site-a", custom))
    assert len(stats.histogram("curated", "mean_hu", 8, -100.0, 100.0).bins) == 8
    assert pending_refusal("job-1") is None
    assert stats.histogram("curated", "mean_hu", 1_000_000, -100.0, 100.0).bins == []
    assert "bins outside the site's policy" in (pending_refusal("job-1") or "")
