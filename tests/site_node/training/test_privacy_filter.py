"""SiteOutboundFilter on real NVFlare shareables: approval, privacy settings, outbound ledger."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.shareable import Shareable
from nvflare.app_common.app_constant import AppConstants

from site_node.db import get_engine
from site_node.home import init_home
from site_node.outbound import list_ledger
from site_node.training.approval import approve_template, stage_client_files
from site_node.training.privacy_filter import REFUSED_KEY, SiteOutboundFilter
from site_node.training.site import SITE_MAP_ENV, write_site_map

SEG3D = Path(__file__).resolve().parents[3] / "jobs" / "seg3d"


def _ctx(custom: Path, task_data: object = None) -> SimpleNamespace:
    workspace = SimpleNamespace(get_app_custom_dir=lambda job_id: str(custom))
    return SimpleNamespace(
        get_prop=lambda key, default=None: task_data if key == FLContextKey.TASK_DATA else default,
        get_identity_name=lambda: "site-a",
        get_job_id=lambda: "job-7",
        get_engine=lambda: SimpleNamespace(get_workspace=lambda: workspace),
    )


def _result(kind: str = DataKind.WEIGHTS) -> object:
    dxo = DXO(
        kind,
        data={"net.a.weight": np.ones(4, dtype=np.float32), "net.b.bias": np.ones(2, dtype=np.float32)},
        meta={"initial_metrics": {"val_dice": 0.5}},
    )
    shareable = dxo.to_shareable()
    shareable.set_header(AppConstants.CURRENT_ROUND, 3)
    return shareable


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    home = tmp_path / "site-a"
    init_home(home, "site-a")
    monkeypatch.setenv(SITE_MAP_ENV, str(write_site_map(tmp_path / "map.json", {"site-a": home})))
    return home, stage_client_files(SEG3D, "seg3d", tmp_path / "job")


def _ledger(home: Path) -> list[dict]:
    return list_ledger(get_engine(f"sqlite:///{home / 'site.db'}"))


def test_approved_update_is_filtered_and_recorded(site: tuple[Path, Path]) -> None:
    home, custom = site
    approve_template(home, "seg3d", SEG3D)
    toml = home / "site.toml"
    toml.write_text(toml.read_text() + '\n[training_privacy]\nexclude_vars = "\\\\.bias$"\n')
    out = SiteOutboundFilter().process(_result(), _ctx(custom))
    out = SiteOutboundFilter().process(out, _ctx(custom))  # configured twice: acts once
    assert list(from_shareable(out).data) == ["net.a.weight"]
    rows = _ledger(home)
    assert [(r["kind"], r["job_id"], r["round"]) for r in rows] == [("model_update+metrics", "job-7", 3)]
    assert rows[0]["size_bytes"] == len(out.to_bytes())


def test_unapproved_job_sends_only_a_refusal(site: tuple[Path, Path]) -> None:
    home, custom = site
    out = SiteOutboundFilter().process(_result(), _ctx(custom))
    dxo = from_shareable(out)
    assert dxo.data == {} and "refused by site site-a" in dxo.get_meta_prop(REFUSED_KEY)
    assert [r["kind"] for r in _ledger(home)] == ["refusal"]


def test_percentile_privacy_refuses_full_weights_but_filters_diffs(site: tuple[Path, Path]) -> None:
    home, custom = site
    approve_template(home, "seg3d", SEG3D)
    toml = home / "site.toml"
    toml.write_text(toml.read_text() + "\n[training_privacy]\npercentile = 50\ngamma = 0.5\n")
    refused = from_shareable(SiteOutboundFilter().process(_result(), _ctx(custom)))
    assert "weight differences" in refused.get_meta_prop(REFUSED_KEY)
    kept = from_shareable(SiteOutboundFilter().process(_result(DataKind.WEIGHT_DIFF), _ctx(custom)))
    assert float(kept.data["net.a.weight"].max()) == pytest.approx(0.5)


def test_more_rounds_than_the_site_accepts_are_refused(site: tuple[Path, Path]) -> None:
    """The server's task says 1000 rounds; the site's policy says at most 20 (default)."""
    home, custom = site
    approve_template(home, "seg3d", SEG3D)
    task = Shareable()
    task.set_header(AppConstants.NUM_ROUNDS, 20)
    kept = from_shareable(SiteOutboundFilter().process(_result(), _ctx(custom, task)))
    assert kept.get_meta_prop(REFUSED_KEY) is None and kept.data
    task.set_header(AppConstants.NUM_ROUNDS, 1000)
    refused = from_shareable(SiteOutboundFilter().process(_result(), _ctx(custom, task)))
    assert refused.data == {}
    assert refused.get_meta_prop(REFUSED_KEY) == (
        "refused by site site-a: rounds outside the site's policy for seg3d"
    )
    # NVFlare clears the task data before result filters run: the result's own round counts too
    late = _result()
    late.set_header(AppConstants.CURRENT_ROUND, 20)  # the 21st round
    assert from_shareable(SiteOutboundFilter().process(late, _ctx(custom))).data == {}


def test_training_options_outside_the_sites_policy_are_refused(site: tuple[Path, Path]) -> None:
    """The client's command line (what NVFlare really runs) carries a 512^3 patch: refused."""
    home, custom = site
    approve_template(home, "seg3d", SEG3D)
    config = custom.parent / "config"
    config.mkdir()
    args = "--epochs 1000 --lr 0.003 --patch 512,512,512 --channels 8,16,32 --batch-size 2"
    executor = {"path": "x.ClientAPIExecutor", "args": {"task_script_args": args}}
    (config / "config_fed_client.json").write_text(json.dumps({"executors": [{"executor": executor}]}))
    refused = from_shareable(SiteOutboundFilter().process(_result(), _ctx(custom)))
    message = refused.get_meta_prop(REFUSED_KEY)
    assert message.startswith("refused by site site-a: local_epochs, patch outside")
    assert "512" not in message and "1000" not in message
