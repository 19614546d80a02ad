"""``pacs listen``: allow-list, routes, quiet period, spool emptied; storescu (dcmtk) as the sender."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from common.config import PacsRoute, load_site_settings
from common.errors import ConfigError
from site_node.home import init_home, open_site
from site_node.pacs import routes as R
from site_node.pacs.listen import Listener
from site_node.pacs.nodes import PacsNode, add_node

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("storescu") is None, reason="dcmtk's storescu is not installed (apt-get install dcmtk)"
    ),
]


def _site(tmp_path: Path, toml: str = "") -> object:
    home = tmp_path / "home"
    init_home(home, "site-a")
    (home / "site.toml").write_text((home / "site.toml").read_text() + toml)
    site = open_site(home)
    add_node(site.engine, PacsNode("pacs1", "HOSPACS", "127.0.0.1", 104))
    return site


def _send(port: int, calling: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        ["storescu", "-R", "-aet", calling, "-aec", "SITENODE", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _drain(listener: Listener, timeout: float = 30) -> list[str]:
    actions: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not actions:
        actions = [listener.process(k) for k in listener.complete_studies()]
        time.sleep(0.2)
    return actions


def test_listener_deidentifies_allowed_senders_and_refuses_others(tmp_path, studies):
    site = _site(tmp_path, '\n[pacs]\nquiet_period_s = 0.5\nbind = "127.0.0.1"\n')
    listener = Listener(site, "SITENODE", 0, 0.5, "127.0.0.1").start()
    try:
        number = sorted(studies)[0]
        refused = _send(listener.port, "INTRUDER", studies[number])
        assert refused.returncode != 0 and listener.scp.rejected >= 1
        assert not list(listener.root.iterdir())
        sent = _send(listener.port, "HOSPACS", studies[number])
        assert sent.returncode == 0, sent.stderr
        folders = list(listener.root.iterdir())
        assert len(folders) == 1 and oct(folders[0].stat().st_mode & 0o777) == "0o700"
        assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in folders[0].iterdir())
        assert _drain(listener) == ["deid"]
    finally:
        listener.stop()
    outputs = list((site.settings.export_dir / "dicom").rglob("*.dcm"))
    quarantined = list((site.settings.quarantine_dir / "dicom").glob("*.bin"))
    assert len(outputs) + len(quarantined) == len(studies[number])
    assert not list(listener.root.iterdir())  # the spool is emptied
    assert listener.counts["received"] == len(studies[number])


def test_routes_drop_unmatched_and_hold_unknown_actions(tmp_path, studies):
    toml = '\n[[routes]]\nname = "ct-only"\nmodality = "CT"\naction = "deid"\n'
    site = _site(tmp_path, toml)
    listener = Listener(site, "SITENODE", 0, 0.2, "127.0.0.1").start()
    try:
        by_modality = {}
        for number, files in studies.items():
            import pydicom

            modality = str(pydicom.dcmread(files[0], stop_before_pixels=True).Modality)
            by_modality.setdefault(modality, number)
        mr = by_modality["MR"]
        assert _send(listener.port, "HOSPACS", studies[mr]).returncode == 0
        assert _drain(listener) == ["dropped"]
        assert not list((site.settings.export_dir / "dicom").rglob("*.dcm"))
    finally:
        listener.stop()


def test_model_route_is_refused_until_inference_registers_it(tmp_path):
    site = _site(tmp_path, '\n[[routes]]\nname = "lung"\nmodality = "CT"\nmodel = "lung-nodules"\n')
    assert site.settings.routes[0].action == "model"
    with pytest.raises(ConfigError, match="action 'model'"):
        Listener(site, "SITENODE", 0, 1.0, "127.0.0.1")


def test_route_matching_rules():
    facts = R.StudyFacts({"CT"}, {"CHEST"}, {"Thorax 1.0 B31f"}, "HOSPACS")
    routes = [
        PacsRoute(name="mr", modality="MR"),
        PacsRoute(name="chest", body_part="chest", series_description="thorax*", calling_aet="HOS*"),
    ]
    assert R.route_for(routes, facts).name == "chest"
    assert R.route_for([PacsRoute(modality="MR")], facts) is None
    assert R.route_for([], facts).action == "deid"


def test_pacs_settings_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SITE_NODE_PACS__AET", "MYNODE")
    monkeypatch.setenv("SITE_NODE_PACS__PORT", "4242")
    settings = load_site_settings(tmp_path)
    assert (settings.pacs.aet, settings.pacs.port) == ("MYNODE", 4242)
    monkeypatch.delenv("SITE_NODE_PACS__AET")
    monkeypatch.delenv("SITE_NODE_PACS__PORT")
    defaults = load_site_settings(tmp_path)
    assert (defaults.pacs.aet, defaults.pacs.port) == (
        "SITENODE",
        11112,
    ) and defaults.pacs.quiet_period_s <= 30
    with pytest.raises(ConfigError):
        load_site_settings(tmp_path, routes=[{"action": "model"}])


def test_listener_refuses_to_start_with_an_empty_allow_list(tmp_path):
    home = tmp_path / "home"
    init_home(home, "site-a")
    listener = Listener(open_site(home), "SITENODE", 0, 1.0, "127.0.0.1")
    with pytest.raises(ConfigError, match="allowed_calling_aets"):
        listener.start()


@pytest.mark.slow
def test_listen_command_receives_routes_and_stops_on_sigterm(tmp_path, studies):
    import json
    import os
    import signal
    import sys

    from infra.orthanc import free_port
    from tests.site_node.pacs.conftest import REPO

    site = _site(
        tmp_path, '\n[pacs]\nquiet_period_s = 1\nbind = "127.0.0.1"\nallowed_calling_aets = ["MODALITY1"]\n'
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITE_NODE_")}
    env.update(SITE_NODE_HOME=str(site.settings.home), PYTHONPATH=str(REPO))
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            "from site_node.cli import main; main()",
            "pacs",
            "listen",
            "--port",
            str(port),
            "--json",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        number = sorted(studies)[0]
        deadline = time.monotonic() + 60
        while _send(port, "MODALITY1", studies[number][:1]).returncode != 0:
            assert time.monotonic() < deadline, "the listener did not come up"
            time.sleep(0.3)
        assert _send(port, "MODALITY1", studies[number]).returncode == 0
        export = site.settings.export_dir / "dicom"
        while len(list(export.rglob("*.dcm"))) + len(
            list((site.settings.quarantine_dir / "dicom").glob("*.bin"))
        ) < len(studies[number]):
            assert time.monotonic() < deadline, "the study was not de-identified"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    counts = json.loads(out)
    assert counts["studies_deid"] >= 1 and counts["received"] == len(studies[number]) + 1, err
    assert number not in out + err
