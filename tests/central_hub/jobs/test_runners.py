"""The production (Session API) runner against a stand-in session, and simulator-runner failure paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from central_hub.jobs.runners import SessionRunner, SimulatorRunner, job_dir
from common.config import load_hub_settings
from common.errors import ConfigError


class FakeSession:
    def __init__(self, status: str) -> None:
        self.status = status
        self.submitted: list[str] = []
        self.downloaded: list[tuple[str, str]] = []

    def submit_job(self, path: str) -> str:
        self.submitted.append(path)
        return "flare-job-1"

    def get_job_meta(self, job_id: str) -> dict[str, Any]:
        return {"status": self.status}

    def download_job_result(self, job_id: str, destination: str) -> str:
        self.downloaded.append((job_id, destination))
        return destination

    def close(self) -> None:
        pass


@pytest.fixture
def prod_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    kit = tmp_path / "admin-kit"
    kit.mkdir()
    return load_hub_settings(
        tmp_path / "hub",
        nvflare_mode="production",
        nvflare_admin_kit=kit,
        nvflare_admin_user="lead@example.org",
    )


def test_production_runner_needs_an_admin_kit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SessionRunner(load_hub_settings(tmp_path / "hub", nvflare_mode="production"))


@pytest.mark.parametrize(
    ("status", "state"),
    [("RUNNING", "running"), ("FINISHED:COMPLETED", "finished"), ("FINISHED:EXECUTION_EXCEPTION", "failed")],
)
def test_session_runner_submits_the_same_job_folder_and_polls(
    prod_settings: Any, monkeypatch: pytest.MonkeyPatch, status: str, state: str
) -> None:
    session = FakeSession(status)
    runner = SessionRunner(prod_settings)
    monkeypatch.setattr(runner, "_session", lambda: session)
    assert runner.start("job1", "seg3d", {"rounds": 1}, ["site-a", "site-b"]) == "flare-job-1"
    exported = Path(session.submitted[0])
    assert (exported / "meta.json").exists()
    assert json.loads((exported / "meta.json").read_text())["min_clients"] == 2
    assert runner.poll("job1", "flare-job-1").state == state
    assert bool(session.downloaded) == status.startswith("FINISHED")


def test_simulator_process_that_dies_without_result_is_failed(tmp_path: Path) -> None:
    settings = load_hub_settings(tmp_path / "hub")
    folder = job_dir(settings, "j1")
    folder.mkdir(parents=True)
    (folder / "pid").write_text("999999")  # no such process
    status = SimulatorRunner(settings).poll("j1", None)
    assert status.state == "failed" and "without a result" in (status.message or "")
    (folder / "result.json").write_text(json.dumps({"state": "failed", "error": "RuntimeError: x"}))
    assert SimulatorRunner(settings).poll("j1", None).message == "RuntimeError: x"
