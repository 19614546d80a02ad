"""seg3d end to end in the NVFlare simulator, driven through the hub (one run: ~40-60 s on 2 cores).

Sites a and b approve the template; site c does not. The job must finish, the global model must load
into the network, a and b must report metrics for every round from their own data only, and c must
refuse ('refused by site site-c') without sending any model update.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.jobs.conftest import make_site

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PARAMS = {"rounds": 2, "local_epochs": 1, "patch": [16, 16, 16], "channels": [4, 8], "cross_site_eval": True}


def _wait(session, settings, job, timeout: float = 400.0):  # type: ignore[no-untyped-def]
    from central_hub.jobs.service import refresh_job

    deadline = time.monotonic() + timeout
    while job.state in ("submitted", "running") and time.monotonic() < deadline:
        time.sleep(2)
        job = refresh_job(session, settings, job)
    return job


def _ledger_kinds(home: Path) -> list[str]:
    from site_node.db import get_engine
    from site_node.outbound import list_ledger

    return [row["kind"] for row in list_ledger(get_engine(f"sqlite:///{home / 'site.db'}"))]


def test_seg3d_runs_refuses_and_keeps_sites_apart(tmp_path: Path, nvflare_home: Path) -> None:
    import torch

    from central_hub.db import session_factory
    from central_hub.home import init_hub
    from central_hub.jobs.runners import job_dir
    from central_hub.jobs.service import MODEL_FILE, submit_job
    from site_node.training.model import SegUNet

    homes = {
        "site-a": make_site(tmp_path, "site-a", 4, 1, "a", True),
        "site-b": make_site(tmp_path, "site-b", 6, 2, "b", True),
        "site-c": make_site(tmp_path, "site-c", 4, 3, "c", False),
    }
    hub_home = tmp_path / "hub"
    hub_home.mkdir()
    table = "\n".join(f'{name} = "{home}"' for name, home in homes.items())
    (hub_home / "hub.toml").write_text(f"[simulator_sites]\n{table}\n")
    settings = init_hub(hub_home)

    with session_factory(settings.database_url)() as session:
        job = submit_job(session, settings, "test:researcher", "seg3d", PARAMS, list(homes))
        job = _wait(session, settings, job)
        log = (job_dir(settings, job.id) / "simulator.log").read_text()[-3000:]
        assert job.state == "finished", (job.message, log)

        # metrics for each approving site, every round, from its own data (n_train differs per site)
        assert set(job.site_metrics) == {"site-a", "site-b"}
        for site, entries in job.site_metrics.items():
            assert [e["round"] for e in entries] == [0, 1], site
            assert all(0.0 <= e["val_dice"] <= 1.0 for e in entries)
        assert job.round == 2

        # site c refused, and the researcher sees it
        assert set(job.refusals) == {"site-c"}
        assert "refused by site site-c" in (job.message or "")

    # the global model loads into the network
    checkpoint = torch.load(job_dir(settings, job.id) / MODEL_FILE, map_location="cpu", weights_only=False)
    model = SegUNet(channels=(4, 8))
    model.load_state_dict(checkpoint["model"])

    # only weights and metrics left the sites, each recorded in its own ledger; c sent only refusals
    kinds_a = _ledger_kinds(homes["site-a"])
    assert kinds_a.count("model_update+metrics") == 2 and "refusal" not in kinds_a
    kinds_c = _ledger_kinds(homes["site-c"])
    assert kinds_c and set(kinds_c) == {"refusal"}
    assert (job_dir(settings, job.id) / "report.png").read_bytes().startswith(b"\x89PNG")
