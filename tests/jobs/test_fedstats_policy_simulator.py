"""fedstats end to end in the NVFlare simulator: a site refuses a job outside its own policy.

Both sites approve the template's code. The hub accepts the job's default parameters
(min_noise_level 0.1); site-b's policy asks for at least 0.2, so site-b's NVFlare client refuses at
run time and the researcher sees why. NVFlare's FedStats controller needs every site's statistics,
so the job ends (failed, not hanging on a stopped client) with site-b's refusal as its message.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FEDSTATS = Path(__file__).resolve().parents[2] / "jobs" / "fedstats"


def _site(root: Path, name: str, policy: str) -> Path:
    from site_node.home import init_home
    from site_node.training.approval import approve_template
    from site_node.training.toy_data import write_toy_curated

    home = root / name
    init_home(home, name, floor_k=5)
    write_toy_curated(home, patients=12, seed=len(name), shape=(16, 16, 16))
    approve_template(home, "fedstats", FEDSTATS)
    with (home / "site.toml").open("a") as toml:
        toml.write(policy)
    return home


def _ledger_kinds(home: Path) -> list[str]:
    from site_node.db import get_engine
    from site_node.outbound import list_ledger

    return [row["kind"] for row in list_ledger(get_engine(f"sqlite:///{home / 'site.db'}"))]


def test_site_refuses_a_statistics_job_outside_its_policy(tmp_path: Path, nvflare_home: Path) -> None:
    from central_hub.db import session_factory
    from central_hub.home import init_hub
    from central_hub.jobs.runners import job_dir
    from central_hub.jobs.service import refresh_job, submit_job

    homes = {
        "site-a": _site(tmp_path, "site-a", ""),
        "site-b": _site(tmp_path, "site-b", "\n[job_policy.fedstats]\nmin_noise_level = 0.2\n"),
    }
    hub_home = tmp_path / "hub"
    hub_home.mkdir()
    table = "\n".join(f'{name} = "{home}"' for name, home in homes.items())
    (hub_home / "hub.toml").write_text(f"[simulator_sites]\n{table}\n")
    settings = init_hub(hub_home)
    with session_factory(settings.database_url)() as session:
        job = submit_job(session, settings, "test:researcher", "fedstats", {"min_count": 5}, list(homes))
        deadline = time.monotonic() + 180
        while job.state in ("submitted", "running") and time.monotonic() < deadline:
            time.sleep(2)
            job = refresh_job(session, settings, job)
        log = (job_dir(settings, job.id) / "simulator.log").read_text()[-3000:]
        assert set(job.refusals) == {"site-b"}, (job.state, job.message, log)
        assert job.refusals["site-b"] == (
            "refused by site site-b: min_noise_level outside the site's policy for fedstats"
        )
        assert job.state == "failed" and job.message == job.refusals["site-b"]
    assert set(_ledger_kinds(homes["site-b"])) == {"refusal"}
    assert "refusal" not in _ledger_kinds(homes["site-a"])
