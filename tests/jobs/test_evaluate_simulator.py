"""evaluate end to end in the NVFlare simulator, driven through the hub and its model registry.

Site a (enough labelled cases) scores the registry model and sends aggregates only; site b holds fewer
cases than its floor and refuses; the hub records one row per site on the model card.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.jobs.conftest import make_site

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _publish(settings) -> None:  # type: ignore[no-untyped-def]
    import torch

    from central_hub.db import session_factory
    from central_hub.models.models import HubModel
    from central_hub.models.service import MODEL_FILE, model_dir
    from common.digest import file_sha256
    from site_node.training.model import SegUNet

    torch.manual_seed(0)
    folder = model_dir(settings, "seg3d", 1)
    folder.mkdir(parents=True)
    torch.save({"model": SegUNet(channels=(4, 8)).state_dict()}, folder / MODEL_FILE)
    with session_factory(settings.database_url)() as session:
        session.add(
            HubModel(
                name="seg3d",
                version=1,
                template="seg3d",
                template_digest="0" * 64,
                model_args={"channels": [4, 8], "patch": [16, 16, 16]},
                sha256=file_sha256(folder / MODEL_FILE),
                size_bytes=(folder / MODEL_FILE).stat().st_size,
            )
        )
        session.commit()


def test_evaluate_job_reports_aggregates_under_the_floor(tmp_path: Path, nvflare_home: Path) -> None:
    from central_hub.db import session_factory
    from central_hub.home import init_hub
    from central_hub.jobs.runners import job_dir
    from central_hub.jobs.service import refresh_job, submit_job
    from central_hub.models.service import full_card, get_model
    from site_node.db import get_engine
    from site_node.outbound import ledger_payloads
    from site_node.training.approval import approve_template

    homes = {
        "site-a": make_site(tmp_path, "site-a", 6, 1, "a", False),
        "site-b": make_site(tmp_path, "site-b", 3, 2, "b", False),
    }
    for home in homes.values():
        (home / "site.toml").write_text(
            (home / "site.toml").read_text().replace("floor_k = 10", "floor_k = 5")
        )
        approve_template(home, "evaluate", JOBS / "evaluate")
    hub_home = tmp_path / "hub"
    hub_home.mkdir()
    table = "\n".join(f'{name} = "{home}"' for name, home in homes.items())
    (hub_home / "hub.toml").write_text(f"[simulator_sites]\n{table}\n")
    settings = init_hub(hub_home)
    _publish(settings)

    with session_factory(settings.database_url)() as session:
        job = submit_job(session, settings, "test:researcher", "evaluate", {"model": "seg3d"}, list(homes))
        deadline = time.monotonic() + 400
        while job.state in ("submitted", "running") and time.monotonic() < deadline:
            time.sleep(2)
            job = refresh_job(session, settings, job)
        log = (job_dir(settings, job.id) / "simulator.log").read_text()[-3000:]
        assert job.state == "finished", (job.message, log)
        rows = {e["site"]: e for e in full_card(session, get_model(session, "seg3d", 1))["evaluations"]}
    assert set(rows) == {"site-a", "site-b"}
    assert 0.0 <= rows["site-a"]["metrics"]["dice"] <= 1.0 and rows["site-a"]["metrics"]["n_cases"] == 6
    assert rows["site-a"]["refused"] is None
    assert rows["site-a"]["metrics"]["dataset_version"].startswith("sha256:")
    assert "fewer labelled cases than the site's floor" in rows["site-b"]["refused"]
    assert "n_cases" not in rows["site-b"]["metrics"] or rows["site-b"]["metrics"]["n_cases"] is None
    # each site's answer went through its ledger, and it holds no weights
    for home in homes.values():
        kinds = [kind for _, kind, _ in ledger_payloads(get_engine(f"sqlite:///{home / 'site.db'}"))]
        assert kinds and "model_update" not in kinds, kinds
